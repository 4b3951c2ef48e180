"""Ring back while waiting for a key; nobody presses one, so the prompt ends with no_input."""

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


class RingtoneMenu(Consumer):
    def ready(self):
        emit("ready")

    @reported
    async def on_incoming_call(self, call):
        await call.answer()
        result = await call.prompt_ringtone(
            "digits", "us", duration=1.0, digits_max=4, initial_timeout=0.5
        )
        emit("result", **prompt_fields(result))
        if not result.successful:
            played = await call.play_tts("Goodbye.")
            emit("played", successful=played.successful)
        await call.hangup()


if __name__ == "__main__":
    forward_sdk_logs()
    # The constructor form (the other apps set the same attributes in setup()).
    RingtoneMenu(project=PROJECT, token=TOKEN, host=HOST, contexts=CONTEXTS).run()
