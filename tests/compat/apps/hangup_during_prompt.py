"""A blocking prompt that the caller abandons: prompt() must return, and nothing may hang."""

from _harness import (
    CONTEXTS,
    HOST,
    PROJECT,
    TOKEN,
    emit,
    forward_sdk_logs,
    prompt_fields,
    reported,
)
from signalwire.relay.consumer import Consumer


class PatientMenu(Consumer):
    def setup(self):
        self.project = PROJECT
        self.token = TOKEN
        self.host = HOST
        self.contexts = CONTEXTS

    def ready(self):
        emit("ready")

    @reported
    async def on_incoming_call(self, call):
        call.on("ended", lambda params: emit("ended_event", end_reason=params.get("end_reason")))
        await call.answer()
        result = await call.prompt_ringtone("digits", "us", duration=30, digits_max=4)
        emit("result", call_state=call.state, call_ended=call.ended, **prompt_fields(result))
        goodbye = await call.play_tts("Are you still there?")
        emit("played_after_hangup", successful=goodbye.successful)


if __name__ == "__main__":
    forward_sdk_logs()
    PatientMenu().run()
