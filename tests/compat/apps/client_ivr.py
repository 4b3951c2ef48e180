"""The same kind of IVR written with ``Client`` instead of ``Consumer`` (v2's other entry point).

Also reports the socket's open/close events and the SDK's own log errors, so a refused login
(``Client setup error: …``) reaches the test.
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
from signalwire.relay.client import Client


@reported
async def on_incoming_call(call):
    emit("call", **call_fields(call))
    await call.answer()
    result = await call.prompt_tts("digits", "Press a key", digits_max=1)
    emit("result", **prompt_fields(result))
    await call.hangup()


async def on_ready(client):
    await client.calling.receive(CONTEXTS, on_incoming_call)
    emit("ready", protocol=client.protocol)


if __name__ == "__main__":
    forward_sdk_logs()
    client = Client(project=PROJECT, token=TOKEN, host=HOST)
    client.on("signalwire.socket.open", lambda: emit("socket_open"))
    client.on("signalwire.socket.close", lambda: emit("socket_close"))
    client.on("ready", on_ready)
    client.connect()
