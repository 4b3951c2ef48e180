"""A PIN IVR written for signalwire 2.1.1: answer, ask for the PIN, read it back, hang up.

Nothing here knows about relaykit: only ``host`` points at the local server.
"""

from _harness import (
    CONTEXTS,
    HOST,
    PROJECT,
    TOKEN,
    call_fields,
    emit,
    forward_sdk_logs,
    prompt_fields,
    reported,
)
from signalwire.relay.consumer import Consumer


class PinIvr(Consumer):
    def setup(self):
        self.project = PROJECT
        self.token = TOKEN
        self.host = HOST
        self.contexts = CONTEXTS

    def ready(self):
        emit("ready", protocol=self.client.protocol, contexts=sorted(self.client.contexts))

    @reported
    async def on_incoming_call(self, call):
        emit("call", **call_fields(call))
        answer = await call.answer()
        emit("answered", successful=answer.successful, state=call.state)
        result = await call.prompt_tts(
            "digits",
            "Please enter your PIN, then press pound",
            digits_max=10,
            digits_terminators="#",
        )
        emit("result", call_id=call.id, **prompt_fields(result))
        if result.successful:
            played = await call.play_tts(f"You entered {' '.join(result.result)}")
            emit("played", successful=played.successful, state=played.event.name)
        hangup = await call.hangup()
        emit("hangup", successful=hangup.successful, reason=hangup.reason, state=call.state)


if __name__ == "__main__":
    forward_sdk_logs()
    PinIvr().run()
