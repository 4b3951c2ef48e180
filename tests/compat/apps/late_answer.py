"""Answers only when the test says so (a line on stdin): by then the caller may be gone."""

from _harness import (
    CONTEXTS,
    HOST,
    PROJECT,
    TOKEN,
    call_fields,
    emit,
    forward_sdk_logs,
    reported,
    wait_for_go,
)
from signalwire.relay.consumer import Consumer


class SlowReceptionist(Consumer):
    def ready(self):
        emit("ready")

    @reported
    async def on_incoming_call(self, call):
        emit("call", **call_fields(call))
        await wait_for_go()
        answer = await call.answer()
        emit(
            "answered",
            successful=answer.successful,
            state=call.state,
            event_name=None if answer.event is None else answer.event.name,
        )
        result = await call.prompt_tts("digits", "Hello?", digits_max=1)
        emit("result", successful=result.successful, prompt_type=result.prompt_type)


if __name__ == "__main__":
    forward_sdk_logs()
    # The constructor form (the other apps set the same attributes in setup()).
    SlowReceptionist(project=PROJECT, token=TOKEN, host=HOST, contexts=CONTEXTS).run()
