"""A menu that takes a spoken department or a key: prompt_audio in "both" mode with hints."""

from _harness import (
    ARGS,
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

AUDIO = ARGS[0]


class DepartmentMenu(Consumer):
    def setup(self):
        self.project = PROJECT
        self.token = TOKEN
        self.host = HOST
        self.contexts = CONTEXTS

    def ready(self):
        emit("ready")

    @reported
    async def on_incoming_call(self, call):
        await call.answer()
        result = await call.prompt_audio(
            "both", AUDIO, digits_max=1, speech_hints=["sales", "support"], initial_timeout=5
        )
        emit("result", **prompt_fields(result))
        await call.hangup()


if __name__ == "__main__":
    forward_sdk_logs()
    DepartmentMenu().run()
