"""Measure the browser phone: what its calls cost the server, and the page's audio delay.

``python -m benchmarks.phone`` prints two tables:

* **Server cost**: N pages (WebSocket clients in a separate process, sending 20 ms microphone
  frames in real time, as the page does) call an IVR that plays audio the whole time. The
  server and the IVR run in this process; its CPU, the media clock's late ticks and the frames
  each page received are measured over the same seconds.
* **Page delay** (needs Debian's chromium): the page, in headless chromium, calls an IVR that
  plays speech; the delay from the server's media clock to the page's audio output is found by
  correlating what the page played with the server's recording of the IVR.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import benchmarks  # noqa: F401  (OPENBLAS_NUM_THREADS first)
from benchmarks._common import cpu_seconds, percentile
from relaykit import Call, Consumer, RelayServer
from relaykit.calls import MediaStarted

PROJECT, TOKEN = "bench-project", "bench-token"
RATE = 16000


class _PlayingIvr(Consumer):
    """Answers and plays ``audio`` until the caller hangs up."""

    contexts = ("office",)

    def __init__(self, audio: str, **options: Any) -> None:
        super().__init__(**options)
        self.audio = audio

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        while not call.ended:
            await call.play_audio(self.audio)


def _noise_wav(path: Path, seconds: float) -> str:
    import wave

    rng = np.random.default_rng(1)
    samples = (rng.standard_normal(round(seconds * RATE)) * 3000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return str(path)


async def _server_cost(clients: int, seconds: float, folder: Path) -> dict[str, Any]:
    async with RelayServer(
        credentials={PROJECT: TOKEN}, record_calls=False, asr_processes=0
    ) as server:
        ivr = _PlayingIvr(
            _noise_wav(folder / "noise.wav", 30), project=PROJECT, token=TOKEN, url=server.url
        )
        task = asyncio.create_task(ivr.serve())
        while not server.session_registry.receiving(PROJECT, "office", time.monotonic() + 1e9):
            await asyncio.sleep(0.05)
        pages = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.phone", "--pages", str(clients),
            "--url", server.url, "--seconds", str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert pages.stdout is not None
        ready = await pages.stdout.readline()  # every page is in its call
        assert ready.strip() == b"calling", ready
        server.late_frames = 0
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        summary = json.loads(await pages.stdout.readline())
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        late = server.late_frames
        await pages.wait()
        await ivr.stop()
        await task
    frames = summary["frames"]
    return {
        "pages": clients,
        "cpu_percent": 100 * cpu / wall,
        "cpu_ms_per_call_second": 1000 * cpu / wall / clients,
        "late_ticks": late,
        "frames_per_page_second": (percentile(frames, 50) or 0) / summary["seconds"],
        "min_frames_per_page_second": min(frames) / summary["seconds"],
    }


async def _pages(url: str, count: int, seconds: float) -> None:
    """The page side of the server-cost rows (runs in its own process)."""
    from websockets.asyncio.client import connect

    received = [0] * count
    started = asyncio.Event()

    async def page(index: int) -> None:
        async with connect(url + "/phone/ws", max_size=None) as ws:
            await ws.send(json.dumps({"type": "auth", "project": PROJECT, "token": TOKEN}))
            await ws.send(json.dumps({"type": "dial", "context": "office"}))
            async for message in ws:
                if isinstance(message, str) and '"answered"' in message:
                    break
            answered.append(index)
            if len(answered) == count:
                started.set()
            await started.wait()

            async def read() -> None:
                async for message in ws:
                    if isinstance(message, bytes):
                        received[index] += 1

            reader = asyncio.create_task(read())
            frame = np.zeros(320, dtype="<i2").tobytes()
            loop = asyncio.get_running_loop()
            start = loop.time()
            for n in range(round(seconds * 50)):
                await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))
                await ws.send(frame)
            reader.cancel()

    answered: list[int] = []
    tasks = [asyncio.create_task(page(i)) for i in range(count)]
    await started.wait()
    print("calling", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({"frames": received, "seconds": seconds}), flush=True)


async def _page_delay(calls: int, folder: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright, expect

    from relaykit.media.tts import EspeakTts

    speech = "Thank you for calling the relaykit phone. Every word here is measured."
    delays: list[float] = []
    answers: list[float] = []
    quiet = folder / "quiet.wav"
    import wave

    with wave.open(str(quiet), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(RATE * 2))
    EspeakTts().synthesize(speech)  # warm the synthesiser
    async with RelayServer(credentials={PROJECT: TOKEN}, asr_processes=0) as server:
        ivr = _SpeakingIvr(speech, project=PROJECT, token=TOKEN, url=server.url)
        task = asyncio.create_task(ivr.serve())
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=[
                    "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={quiet}%noloop",
                ],
            )  # fmt: skip
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{server.port}/phone")
            await page.fill("#login-project", PROJECT)
            await page.fill("#login-token", TOKEN)
            await page.click("#login button[type=submit]")
            await expect(page.locator("#main")).to_be_visible()
            for _ in range(calls):
                clicked = time.monotonic()
                await page.click("#call")
                await expect(page.locator("#line-state")).to_have_text("answered: office")
                answers.append(time.monotonic() - clicked)
                await expect(page.locator("#line-state")).to_have_text(
                    "ended (hangup)", timeout=30_000
                )
                await asyncio.sleep(0.3)
                data = await page.evaluate("window.relaykitPhone.playedAudio()")
                played = np.frombuffer(base64.b64decode(data), dtype="<i2")
                call = server.phone.directory.calls(PROJECT)[-1].call  # type: ignore[union-attr]
                start = next(e.at for e in call.log if isinstance(e, MediaStarted))
                ivr_audio = call.media.recording()[:, 1]
                part = ivr_audio[round(start * RATE) : round((start + 1.5) * RATE)]
                delays.append(_offset(part, played) / RATE - start)
            await browser.close()
        await ivr.stop()
        await task
    return {"calls": calls, "answer": answers, "delay": delays}


class _SpeakingIvr(Consumer):
    contexts = ("office",)

    def __init__(self, text: str, **options: Any) -> None:
        super().__init__(**options)
        self.text = text

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        await call.play_tts(self.text)
        await call.hangup()


def _offset(segment: np.ndarray, signal: np.ndarray) -> int:
    a, b = segment.astype(np.float64), signal.astype(np.float64)
    size = 1 << (len(a) + len(b) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    return int(np.argmax(corr[: len(b) - len(a) + 1]))


async def _main(args: argparse.Namespace) -> None:
    if args.pages:
        await _pages(args.url, args.pages, args.seconds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("## Browser phone: server cost (pages stream 20 ms mic frames, the IVR plays)\n")
        print(
            "| pages | server+IVR CPU | CPU ms per call-second | late ticks "
            "| frames/s per page (median, min) |"
        )
        print("|---|---|---|---|---|")
        for n in args.sizes:
            row = await _server_cost(n, args.seconds, folder)
            print(
                f"| {n} | {row['cpu_percent']:.1f} % | {row['cpu_ms_per_call_second']:.2f} | "
                f"{row['late_ticks']} | {row['frames_per_page_second']:.1f}, "
                f"{row['min_frames_per_page_second']:.1f} |",
                flush=True,
            )
        print()
        if shutil.which("chromium") is None:
            print("(no chromium: page delay not measured)")
            return
        row = await _page_delay(args.calls, folder)
        print("## Browser phone: the page in headless chromium\n")
        print(
            "| calls | click → answered (median, max) | media clock → page output (median, max) |"
        )
        print("|---|---|---|")
        answer, delay = row["answer"], row["delay"]
        print(
            f"| {row['calls']} | {1000 * (percentile(answer, 50) or 0):.0f} ms, "
            f"{1000 * max(answer):.0f} ms | {1000 * (percentile(delay, 50) or 0):.0f} ms, "
            f"{1000 * max(delay):.0f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50]
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--pages", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
