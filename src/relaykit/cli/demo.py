"""``relaykit demo``: a PIN IVR answers a virtual caller on an embedded server."""

from __future__ import annotations

__all__ = ["DemoOutcome", "PinIvr", "run_demo"]

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..calls import TranscriptEntry
from ..client import Call, Consumer, PromptResult
from ..server import RelayServer

PIN_LENGTH = 3
PIN_PROMPT = f"Please enter your {PIN_LENGTH} digit PIN, then press pound"


class PinIvr(Consumer):
    """The demo IVR, written exactly as a SignalWire v2 app would be."""

    contexts = ("office",)

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.results: asyncio.Queue[PromptResult] = asyncio.Queue()

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        # Room for one key more than the PIN, so the pound key (not the third digit) ends entry.
        result = await call.prompt_tts(
            prompt_type="digits",
            text=PIN_PROMPT,
            digits_max=PIN_LENGTH + 1,
            digits_terminators="#",
        )
        self.results.put_nowait(result)
        if call.ended:
            return
        if result.successful and len(result.result or "") == PIN_LENGTH:
            spaced = " ".join(result.result or "")
            await call.play_tts(f"You entered {spaced}. Goodbye.")
        else:
            await call.play_tts(f"That was not a {PIN_LENGTH} digit PIN. Goodbye.")
        await call.hangup()


@dataclass(frozen=True)
class DemoOutcome:
    """The demo call's prompt result, transcript and recording."""

    result: PromptResult
    transcript: list[TranscriptEntry]
    wav: Path


async def run_demo(
    out_dir: Path,
    *,
    digits: str = "427#",
    on_entry: Callable[[TranscriptEntry], None] | None = None,
    timeout: float = 30.0,
) -> DemoOutcome:
    """Run the demo call; the caller presses ``digits`` once the prompt has started."""
    project, token = "demo-project", secrets.token_hex(8)
    async with RelayServer(credentials={project: token}) as server:
        ivr = PinIvr(project=project, token=token, url=server.url)
        ivr_task = asyncio.create_task(ivr.serve())
        try:
            caller = await server.dial_in(context="office")
            if on_entry is not None:
                caller.on_transcript(on_entry)
            await caller.wait_answered(timeout)
            await caller.silence(1.5)  # let the prompt play a little, then barge in
            await caller.press(digits)
            result = await asyncio.wait_for(ivr.results.get(), timeout)
            await caller.wait_for_state("ended", timeout)
            wav = caller.save_wav(out_dir / f"demo-call-{caller.call_id[:8]}.wav")
            return DemoOutcome(result, caller.transcript, wav)
        finally:
            await ivr.stop()
            await ivr_task
