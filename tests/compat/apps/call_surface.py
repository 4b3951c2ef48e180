"""record, send_digits, detect and tap as a v2 app writes them; ``python call_surface.py MODE``.

Modes: ``voicemail`` (record with a beep until silence), ``record_stop`` (record_async, then
stop on "go"), ``send_digits``, ``detect_digit``, ``detect_async`` (detect_digit_async, stop
on "go"), ``amd`` (detect_answering_machine, then amd(wait_for_beep=True)), ``human``,
``fax``, ``bad_detect`` (an unknown detect type), ``tap PORT`` (tap_async over RTP to
127.0.0.1:PORT, stop on "go"), ``tap_refused PORT``, ``fax_send`` (fax_send, fax_receive).
"""

import asyncio

from _harness import (
    ARGS,
    CONTEXTS,
    HOST,
    PROJECT,
    TOKEN,
    emit,
    forward_sdk_logs,
    reported,
    wait_for_go,
)
from signalwire.relay.consumer import Consumer

MODE = ARGS[0]


def event_fields(result):
    event = result.event
    return {
        "cls": type(result).__name__,
        "successful": result.successful,
        "event_name": None if event is None else event.name,
        "event_payload": None if event is None else event.payload,
    }


def record_fields(result):
    return {
        **event_fields(result),
        "url": result.url,
        "duration": result.duration,
        "size": result.size,
    }


def detect_fields(result):
    return {**event_fields(result), "type": result.detect_type, "result": result.result}


async def until_completed(action, seconds=5.0):
    for _ in range(int(seconds / 0.02)):
        if action.completed:
            return
        await asyncio.sleep(0.02)


class Surface(Consumer):
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
        await getattr(self, MODE)(call)
        if MODE not in ("tap_refused", "bad_detect"):
            await call.hangup()

    async def voicemail(self, call):
        await call.play_tts("Please leave a message after the tone.")
        result = await call.record(beep=True, record_format="wav", end_silence_timeout=1.0)
        emit("recorded", **record_fields(result))

    async def record_stop(self, call):
        action = await call.record_async(record_format="wav", stereo=True, direction="both")
        emit("recording", url=action.url, state=action.state, completed=action.completed)
        await wait_for_go()
        stop = await action.stop()
        await until_completed(action)
        emit(
            "stopped",
            stop=stop.successful,
            completed=action.completed,
            **record_fields(action.result),
        )

    async def send_digits(self, call):
        result = await call.send_digits("12w3#")
        emit("sent", **event_fields(result))

    async def detect_digit(self, call):
        emit("detected", **detect_fields(await call.detect_digit(digits="59")))

    async def detect_async(self, call):
        action = await call.detect_digit_async()
        await wait_for_go()
        stop = await action.stop()
        await until_completed(action)
        emit(
            "detected",
            stop=stop.successful,
            completed=action.completed,
            **detect_fields(action.result),
        )

    async def amd(self, call):
        emit("amd", **detect_fields(await call.detect_answering_machine()))
        emit("amd_beep", **detect_fields(await call.amd(wait_for_beep=True)))
        await call.play_tts("Hello, this is a reminder of your appointment tomorrow.")

    async def human(self, call):
        emit("amd", **detect_fields(await call.detect_answering_machine()))

    async def fax(self, call):
        emit("fax", **detect_fields(await call.detect_fax(timeout=10)))

    async def bad_detect(self, call):
        emit("detected", **detect_fields(await call.detect("voice")))
        await call.hangup()

    async def tap(self, call):
        action = await call.tap_async(
            "speak", "rtp", target_addr="127.0.0.1", target_port=int(ARGS[1])
        )
        emit("tapping", state=action.state, completed=action.completed, source=action.source_device)
        await wait_for_go()
        stop = await action.stop()
        await until_completed(action)
        result = action.result
        emit(
            "tapped",
            stop=stop.successful,
            tap=result.tap,
            source=result.source_device,
            destination=result.destination_device,
            **event_fields(result),
        )

    async def fax_send(self, call):
        sent = await call.fax_send("https://example.com/doc.pdf")
        received = await call.fax_receive()
        emit("faxed", send=sent.successful, receive=received.successful)

    async def tap_refused(self, call):
        action = await call.tap_async(
            "both", "rtp", target_addr="127.0.0.1", target_port=int(ARGS[1])
        )
        emit("tapped", completed=action.completed, **event_fields(action.result))
        await call.hangup()


if __name__ == "__main__":
    forward_sdk_logs()
    Surface().run()
