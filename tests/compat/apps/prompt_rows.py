"""One prompt call per run, exactly as a row of the protocol spec's §5.1.3 writes it.

``python prompt_rows.py ROW AUDIO_URL``: on the incoming call, answer and run ROW; blocking rows
report their PromptResult, ``_async`` rows their PromptAction and then its result once complete.
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
    prompt_fields,
    reported,
)
from signalwire.relay.consumer import Consumer

ROW, AUDIO = ARGS[0], ARGS[1]

ROWS = {
    "prompt_both": lambda call: call.prompt(
        prompt_type="both", media_list=[{"type": "audio", "url": AUDIO}]
    ),
    "prompt_speech": lambda call: call.prompt(
        prompt_type="speech", media_list=[{"type": "audio", "url": AUDIO}]
    ),
    "prompt_digits": lambda call: call.prompt(
        prompt_type="digits",
        media_list=[{"type": "audio", "url": AUDIO}],
        digits_max=5,
        digits_timeout=30,
    ),
    "prompt_audio_both": lambda call: call.prompt_audio(
        prompt_type="both", url=AUDIO, digits_max=5
    ),
    "prompt_audio_async_both": lambda call: call.prompt_audio_async(
        prompt_type="both", url=AUDIO, speech_language="it-IT"
    ),
    "prompt_tts_both": lambda call: call.prompt_tts(
        prompt_type="both", text="hi there!", gender="male", digits_max=5
    ),
    "prompt_ringtone_both": lambda call: call.prompt_ringtone(
        prompt_type="both", name="us", duration=10, digits_max=5
    ),
    "prompt_ringtone_async_both": lambda call: call.prompt_ringtone_async(
        prompt_type="both", name="us", speech_language="it-IT"
    ),
    # Beyond §5.1.3: volume is sent as a float whenever it is passed, 0 included (§8.2.10).
    "prompt_tts_volume_zero": lambda call: call.prompt_tts(
        "digits", "hi there!", digits_max=2, volume=0
    ),
}


class RowIvr(Consumer):
    def setup(self):
        self.project = PROJECT
        self.token = TOKEN
        self.host = HOST
        self.contexts = CONTEXTS

    def ready(self):
        emit("ready", protocol=self.client.protocol)

    @reported
    async def on_incoming_call(self, call):
        await call.answer()
        outcome = await ROWS[ROW](call)
        if ROW.endswith("_async_both"):
            action = outcome
            emit(
                "action",
                control_id=action.control_id,
                payload=action.payload,
                completed=action.completed,
            )
            for _ in range(300):
                if action.completed:
                    break
                await asyncio.sleep(0.05)
            emit(
                "result",
                completed=action.completed,
                state=action.state,
                **prompt_fields(action.result),
            )
        else:
            emit("result", **prompt_fields(outcome))


if __name__ == "__main__":
    forward_sdk_logs()
    RowIvr().run()
