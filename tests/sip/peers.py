"""Real SIP peers for the tests: SIPp and baresip from Debian, run as subprocesses on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
PCAPS = Path("/usr/share/sip-tester")
LOOPBACK = "127.0.0.1"
IVR_NUMBER = "+15559870000"


def require(binary: str, package: str) -> str:
    """The binary's path; a CI run fails without it, a local run skips with the reason."""
    path = shutil.which(binary)
    if path is None:
        message = f"{binary} is not installed: apt-get install -y --no-install-recommends {package}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (.ci/run installs it)")
        pytest.skip(message)
    return path


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A currently free UDP port on loopback (for peers that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_even_port() -> int:
    """A free even UDP port p with p+1..p+3 free too (SIPp binds RTP/RTCP for audio and video).

    Drawn below Linux's ephemeral range (32768-60999), where the server's own RTP sockets
    (bound to port 0) never land between this check and SIPp's bind.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000, 2)
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for i, sock in enumerate(socks):
                sock.bind((LOOPBACK, port + i))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no four free UDP ports in a row")


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """Terminate, then kill, a subprocess we started; always reaps it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class SippRun:
    """One SIPp run's outcome."""

    def __init__(self, returncode: int, out: str, err: str, logs: Path) -> None:
        self.returncode = returncode
        self.out = out
        self.err = err
        self.logs = logs

    @property
    def errors(self) -> str:
        texts = [p.read_text(errors="replace") for p in self.logs.glob("*errors.log")]
        return "\n".join(texts)[-3000:]

    @property
    def messages(self) -> str:
        texts = [p.read_text(errors="replace") for p in self.logs.glob("*messages.log")]
        return "\n".join(texts)

    def explain(self) -> str:
        return (
            f"sipp exit {self.returncode}\n--- stderr\n{self.err[-2000:]}\n"
            f"--- errors\n{self.errors}\n--- messages\n{self.messages[-4000:]}"
        )


async def run_sipp(
    scenario: str | Path,
    sip_port: int,
    tmp: Path,
    *,
    service: str = IVR_NUMBER,
    calls: int = 1,
    rate: float | None = None,
    limit: int | None = None,
    timeout: float = 60.0,
    extra: tuple[str, ...] = (),
) -> SippRun:
    """Run SIPp as a UAC against ``127.0.0.1:sip_port`` until its calls complete."""
    sipp = require("sipp", "sip-tester")
    tmp.mkdir(parents=True, exist_ok=True)
    path = Path(scenario)
    if not path.is_absolute():
        path = DATA / path
    args = [
        sipp,
        f"{LOOPBACK}:{sip_port}",
        "-sf", str(path),
        "-s", service,
        "-i", LOOPBACK,
        "-p", str(free_port()),
        "-mi", LOOPBACK,
        "-mp", str(free_even_port()),
        "-m", str(calls),
        "-nostdin",
        "-timeout", f"{int(timeout)}s",
        "-trace_err",
        "-trace_msg",
        *extra,
    ]  # fmt: skip
    if rate is not None:
        args += ["-r", str(rate)]
    if limit is not None:
        args += ["-l", str(limit)]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=tmp,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 15)
    finally:
        await stop_process(proc)
    return SippRun(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"), tmp
    )


# -- baresip ---------------------------------------------------------------------------------
class Baresip:
    """A baresip UA on loopback: plays a WAV as its microphone, records what it hears.

    Controlled over ``ctrl_tcp`` (netstring-framed JSON commands).
    """

    def __init__(self, home: Path, *, source_wav: Path, answer: str = "manual") -> None:
        self.home = home
        self.source_wav = source_wav
        self.answer = answer
        self.sip_port = free_port()
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        self.recordings = home / "recordings"
        self.proc: asyncio.subprocess.Process | None = None
        self.output = bytearray()
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def uri(self) -> str:
        return f"sip:phone@{LOOPBACK}:{self.sip_port}"

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.recordings.mkdir(exist_ok=True)
        template = (DATA / "baresip" / "config").read_text()
        config = (
            template.replace("@SIP_PORT@", str(self.sip_port))
            .replace("@CTRL_PORT@", str(self.ctrl_port))
            .replace("@SOURCE_WAV@", str(self.source_wav))
            .replace("@RECORDINGS@", str(self.recordings))
        )
        (self.home / "config").write_text(config)
        accounts = (DATA / "baresip" / "accounts").read_text()
        (self.home / "accounts").write_text(
            accounts.replace("@SIP_PORT@", str(self.sip_port)).replace("@ANSWER@", self.answer)
        )
        (self.home / "contacts").write_text("")

    async def start(self) -> None:
        binary = require("baresip", "baresip-core")
        self.write_config()
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "-f",
            str(self.home),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader_task = asyncio.create_task(self._read())
        # ready once ctrl_tcp accepts connections
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection(LOOPBACK, self.ctrl_port)
            except OSError:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"baresip exited: {self.log}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        raise RuntimeError(f"baresip did not open ctrl_tcp: {self.log}")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.output += chunk

    @property
    def log(self) -> str:
        return self.output.decode(errors="replace")

    async def command(self, command: str, params: str = "") -> dict:
        """Send one ctrl_tcp command; returns its JSON response."""
        reader, writer = await asyncio.open_connection(LOOPBACK, self.ctrl_port)
        try:
            body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
            writer.write(str(len(body)).encode() + b":" + body + b",")
            await writer.drain()
            while True:
                length = int((await reader.readuntil(b":"))[:-1])
                data = await reader.readexactly(length + 1)
                message = json.loads(data[:-1])
                if message.get("response"):
                    return message
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def wait_log(self, text: str, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.log:
            if loop.time() > deadline:
                raise TimeoutError(f"baresip never logged {text!r}:\n{self.log[-3000:]}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.command("quit"), 2)
            await stop_process(self.proc)
        if self._reader_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader_task, 2)

    def heard(self) -> tuple[np.ndarray, int]:
        """What baresip received (decoded), as int16 samples and their rate."""
        files = sorted(self.recordings.glob("*-dec.wav"))
        if not files:
            raise FileNotFoundError(f"no -dec.wav in {self.recordings}: {self.log[-2000:]}")
        with wave.open(str(files[-1])) as wav:
            rate = wav.getframerate()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
            if wav.getnchannels() > 1:
                data = data.reshape(-1, wav.getnchannels())[:, 0]
        return data.astype(np.int16), rate


@contextlib.asynccontextmanager
async def baresip(
    home: Path, *, source_wav: Path, answer: str = "manual"
) -> AsyncIterator[Baresip]:
    phone = Baresip(home, source_wav=source_wav, answer=answer)
    try:
        await phone.start()
        yield phone
    finally:
        await phone.stop()


# -- audio helpers -----------------------------------------------------------------------------
def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def utterances(samples: np.ndarray, rate: int, *, gap: float = 0.3) -> list[np.ndarray]:
    """Split audio at pauses of ``gap`` seconds or more (20 ms frames above -50 dBFS are loud).

    Each piece runs from 100 ms before its first loud frame to the end of its last one: the
    recogniser drops the end of a long phrase when much quiet follows it (seen on the PIN
    prompt with ~40 ms or more of G.711 idle noise after "pound").
    """
    frame = rate // 50
    n = len(samples) // frame
    frames = samples[: n * frame].reshape(n, frame).astype(np.float64)
    loud = 10 * np.log10((frames**2).mean(axis=1) + 1e-9) > 20 * np.log10(32768) - 50
    pieces: list[np.ndarray] = []
    start: int | None = None
    quiet = 0
    end = 0
    for i, is_loud in enumerate(loud):
        if is_loud:
            start = i if start is None else start
            end = i
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet * 0.02 >= gap:
                pieces.append(samples[max(0, start - 5) * frame : (end + 1) * frame])
                start = None
    if start is not None:
        pieces.append(samples[max(0, start - 5) * frame : (end + 1) * frame])
    return pieces


def transcribe(samples: np.ndarray, rate: int, hints: list[str]) -> list[tuple[str, float]]:
    """Each utterance recognised by relaykit's own recogniser: (text, confidence)."""
    import soxr

    from relaykit.media.asr import PocketsphinxRecognizer

    recognizer = PocketsphinxRecognizer()
    out: list[tuple[str, float]] = []
    for piece in utterances(samples, rate):
        audio = soxr.resample(piece, rate, 16000).astype(np.int16) if rate != 16000 else piece
        utterance = recognizer.open(hints=hints)
        try:
            utterance.feed(audio)
            result = utterance.finish()
        finally:
            utterance.close()
        if result is not None:
            out.append((result.text, result.confidence))
    return out
