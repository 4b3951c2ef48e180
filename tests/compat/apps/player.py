"""play_tts, play_audio, play_silence, play_ringtone, play(media_list), play_tts_async + stop.

``python player.py all AUDIO_URL`` plays everything; ``python player.py nested AUDIO_URL`` plays
one audio item written in the nested form ``{"type": "audio", "params": {"url": …}}``, which
v2 double-wraps on the wire (§7.4, §8.2.11).
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
)
from signalwire.relay.consumer import Consumer

MODE, AUDIO = ARGS[0], ARGS[1]


def play_fields(result):
    return {
        "successful": result.successful,
        "event_name": None if result.event is None else result.event.name,
    }


class Player(Consumer):
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
        if MODE == "nested":
            nested = await call.play([{"type": "audio", "params": {"url": AUDIO}}])
            emit("play", name="nested", **play_fields(nested))
            await call.hangup()
            return
        emit("play", name="tts", **play_fields(await call.play_tts("Welcome", gender="female")))
        emit("play", name="audio", **play_fields(await call.play_audio(AUDIO)))
        emit("play", name="silence", **play_fields(await call.play_silence(0.3)))
        emit("play", name="ringtone", **play_fields(await call.play_ringtone("us", duration=0.5)))
        media = [{"type": "tts", "text": "one"}, {"type": "silence", "duration": 0.2}]
        emit("play", name="list", **play_fields(await call.play(media, volume=-3)))
        action = await call.play_tts_async(
            "This message is long, so it is still playing when the app stops it."
        )
        emit("play_async", completed=action.completed, state=action.state)
        await asyncio.sleep(0.3)
        stop = await action.stop()
        for _ in range(100):
            if action.completed:
                break
            await asyncio.sleep(0.02)
        emit(
            "play_stopped",
            stop=stop.successful,
            completed=action.completed,
            state=action.state,
            **play_fields(action.result),
        )
        hangup = await call.hangup()
        emit("hangup", successful=hangup.successful)


if __name__ == "__main__":
    forward_sdk_logs()
    Player().run()
