"""Speech decoding processes: plain user scripts, the pipe protocol, dying workers, no leftovers."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from relaykit.calls import speech as speech_module
from relaykit.calls.speech import (
    PROTOCOL_VERSION,
    SpeechRecognition,
    WireError,
    encode_frame,
    read_frame,
)
from relaykit.media.tts import EspeakTts
from tests.helpers import WAIT

HINTS = ["sales", "support"]
NOTHING = (None, 0.0)


@pytest.fixture(scope="module")
def sales() -> np.ndarray:
    """'sales' in the TTS voice, with the silence a prompt hands over around it."""
    pad = np.zeros(8000, dtype=np.int16)
    return np.concatenate([pad, EspeakTts().synthesize("sales"), pad, pad])


@pytest_asyncio.fixture
async def one_worker() -> AsyncIterator[SpeechRecognition]:
    speech = SpeechRecognition(processes=1)
    assert await speech.warm_up() == 1
    yield speech
    speech.close()


def alive(pid: int) -> bool:
    """True while ``pid`` exists, zombies included (a reaped process is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(marker: bytes = b"relaykit.calls.speech_worker") -> set[int]:
    """Child processes of this one (zombies included) whose command line holds ``marker``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and marker in cmdline:
            found.add(int(entry))
    return found


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to WAIT) until ``condition()`` holds."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- the issue


SCRIPT = """
import asyncio
import os

from relaykit import Call, Consumer, RelayServer


async def scenario() -> None:
    async with RelayServer(credentials={"p": "t"}) as server:
        results = asyncio.Queue()

        class Menu(Consumer):
            contexts = ["office"]

            async def on_incoming_call(self, call: Call) -> None:
                await call.answer()
                result = await call.prompt_tts(
                    "speech", "Say sales or support", speech_hints=["sales", "support"]
                )
                results.put_nowait(result)

        menu = Menu(project="p", token="t", url=server.url)
        serving = asyncio.create_task(menu.serve())
        caller = await server.dial_in(context="office")
        await caller.wait_answered()
        await caller.say("sales")
        result = await asyncio.wait_for(results.get(), 60)
        print(os.getpid(), "recognised:", result.prompt_type, result.result)
        await menu.stop()
        await serving


asyncio.run(scenario())
"""


def test_speech_prompt_in_a_script_without_a_main_guard(tmp_path: Path) -> None:
    """A plain script (no ``if __name__ == "__main__":``) gets its caller's word recognised."""
    script = tmp_path / "ivr.py"
    script.write_text(textwrap.dedent(SCRIPT))
    assert "__main__" not in script.read_text()
    with subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=180)
        finally:
            run.kill()
    assert run.returncode == 0, stderr[-4000:]
    # exactly the script's own line: a spawned child that re-ran the script would print too
    assert stdout.splitlines() == [f"{run.pid} recognised: speech sales"], stderr[-4000:]


# --------------------------------------------------------------------------- the workers


@pytest.mark.asyncio
async def test_workers_decode_concurrent_requests(sales: np.ndarray) -> None:
    """More requests than workers: they queue, and every one is answered."""
    speech = SpeechRecognition(processes=2)
    try:
        results = await asyncio.gather(
            *(speech.decode("en-US", HINTS, sales, final=True) for _ in range(6))
        )
        assert [text for text, _ in results] == ["sales"] * 6
        assert all(0 < confidence <= 100 for _, confidence in results)
        assert len(speech.worker_pids) == 2
    finally:
        speech.close()


@pytest.mark.asyncio
async def test_partial_decodes_go_to_the_workers_too(
    one_worker: SpeechRecognition, sales: np.ndarray
) -> None:
    assert await one_worker.decode("en-US", HINTS, sales, final=False) == ("sales", 0.0)


@pytest.mark.asyncio
async def test_a_killed_idle_worker_is_replaced(
    one_worker: SpeechRecognition, sales: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    [pid] = one_worker.worker_pids
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: pid not in one_worker.worker_pids)
    text, _ = await one_worker.decode("en-US", HINTS, sales, final=True)
    assert text == "sales"
    assert len(one_worker.worker_pids) == 1
    assert not alive(pid)  # reaped, no zombie
    assert f"speech worker {pid} ended while idle" in caplog.text


@pytest.mark.asyncio
async def test_a_worker_killed_mid_utterance_drops_only_that_utterance(
    one_worker: SpeechRecognition, sales: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    [pid] = one_worker.worker_pids
    os.kill(pid, signal.SIGSTOP)  # holds the request in the worker until the kill
    pending = asyncio.ensure_future(one_worker.decode("en-US", HINTS, sales, final=True))
    pool = one_worker._pool
    assert pool is not None
    await eventually(lambda: pool.in_flight[0] is not None)
    os.kill(pid, signal.SIGKILL)
    assert await asyncio.wait_for(pending, WAIT) == NOTHING
    assert "while decoding; its utterance counts as not understood" in caplog.text
    text, _ = await one_worker.decode("en-US", HINTS, sales, final=True)
    assert text == "sales"
    assert pid not in one_worker.worker_pids and not alive(pid)


@pytest.mark.asyncio
async def test_a_worker_that_does_not_answer_is_replaced(
    sales: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    speech = SpeechRecognition(processes=1, timeout=0.5)
    try:
        assert await speech.warm_up() == 1
        [pid] = speech.worker_pids
        os.kill(pid, signal.SIGSTOP)
        assert (
            await asyncio.wait_for(speech.decode("en-US", HINTS, sales, final=True), WAIT)
            == NOTHING
        )
        assert "gave no answer in 0.5 s" in caplog.text
        assert pid not in speech.worker_pids and not alive(pid)
    finally:
        speech.close()


@pytest.mark.asyncio
async def test_close_answers_waiting_requests_and_leaves_no_process(sales: np.ndarray) -> None:
    before = children()  # another test's leftovers are not this one's business
    speech = SpeechRecognition(processes=2)
    assert await speech.warm_up() == 2
    pids = speech.worker_pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # busy forever: two requests in flight, two queued
    pending = [
        asyncio.ensure_future(speech.decode("en-US", HINTS, sales, final=True)) for _ in range(4)
    ]
    pool = speech._pool
    assert pool is not None
    await eventually(lambda: None not in pool.in_flight)
    speech.close()
    speech.close()  # idempotent
    assert await asyncio.wait_for(asyncio.gather(*pending), WAIT) == [NOTHING] * 4
    assert not any(alive(pid) for pid in pids)
    assert children() <= before
    assert speech.worker_pids == ()


@pytest.mark.asyncio
async def test_decode_after_close_starts_workers_again(
    one_worker: SpeechRecognition, sales: np.ndarray
) -> None:
    [old] = one_worker.worker_pids
    one_worker.close()
    text, _ = await one_worker.decode("en-US", HINTS, sales, final=True)
    assert text == "sales"
    assert one_worker.worker_pids and old not in one_worker.worker_pids


@pytest.mark.asyncio
async def test_worker_stderr_goes_to_the_server_log(
    one_worker: SpeechRecognition, sales: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's own warnings (here: an unpronounceable hint) reach the server's logger."""
    caplog.set_level(logging.WARNING, logger="relaykit.calls.speech")
    [pid] = one_worker.worker_pids
    await one_worker.decode("en-US", ["xqzzyv"], sales, final=True)
    await eventually(lambda: f"speech worker {pid}: " in caplog.text and "xqzzyv" in caplog.text)


@pytest.mark.asyncio
async def test_a_worker_that_cannot_start_gives_nothing_heard(
    sales: np.ndarray, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An interpreter that exits at once: the prompt gets no_match with the reason logged."""
    code = "import sys; print('no model here', file=sys.stderr); sys.exit(3)"
    broken = [sys.executable, "-c", code]
    monkeypatch.setattr(speech_module, "_worker_command", lambda: broken)
    speech = SpeechRecognition(processes=1)
    try:
        assert await speech.warm_up() == 0
        result = await asyncio.wait_for(speech.decode("en-US", HINTS, sales, final=True), WAIT)
        assert result == NOTHING
        assert "ended before it was ready (exit code 3)" in caplog.text
        assert "no model here" in caplog.text
    finally:
        speech.close()
    assert children(b"no model here") == set()  # each failed start was reaped


@pytest.mark.asyncio
async def test_worker_errors_are_raised_to_the_caller(
    one_worker: SpeechRecognition, sales: np.ndarray
) -> None:
    with pytest.raises(Exception, match="UnsupportedLanguageError"):
        await one_worker.decode("fr-FR", HINTS, sales, final=True)
    text, _ = await one_worker.decode("en-US", HINTS, sales, final=True)  # still serving
    assert text == "sales"


@pytest.mark.asyncio
async def test_decode_refuses_audio_that_is_not_int16(one_worker: SpeechRecognition) -> None:
    with pytest.raises(TypeError, match="int16"):
        await one_worker.decode("en-US", HINTS, np.zeros(160, dtype=np.float32), final=True)


# --------------------------------------------------------------------------- the protocol


def test_frames_round_trip() -> None:
    stream = io.BytesIO(encode_frame({"a": [1, "é"]}, b"\x01\x02") + encode_frame({"b": None}))
    assert read_frame(stream) == ({"a": [1, "é"]}, b"\x01\x02")
    assert read_frame(stream) == ({"b": None}, b"")
    assert read_frame(stream) is None


def header(meta: int, payload: int = 0, *, version: int = PROTOCOL_VERSION) -> bytes:
    return (
        b"RKSW" + bytes([version, 0, 0, 0]) + meta.to_bytes(4, "big") + payload.to_bytes(4, "big")
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XXXX" + header(0)[4:], "not a speech worker frame"),
        (header(0, version=PROTOCOL_VERSION + 1), "protocol version"),
        (encode_frame({"a": 1})[:-3], "stream ended inside a frame"),
        (encode_frame({})[:7], "inside a frame header"),
        (header(1 << 30), "too large"),
        (header(4) + b"[1 ]", "not a JSON object"),
        (header(3) + b"{x}", "not JSON"),
    ],
)
def test_bad_frames_are_named(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        read_frame(io.BytesIO(data))


def test_the_worker_process_speaks_the_protocol(sales: np.ndarray) -> None:
    """Ready, a decode, an error reply, then a bad frame ends it with exit code 2."""
    worker = subprocess.Popen(
        [sys.executable, "-P", "-m", "relaykit.calls.speech_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert worker.stdin and worker.stdout
    try:
        ready = read_frame(worker.stdout)
        assert ready is not None and ready[0]["type"] == "ready"
        request = {"type": "decode", "id": 7, "language": "en-US", "hints": HINTS, "final": True}
        worker.stdin.write(encode_frame(request, sales.astype("<i2").tobytes()))
        worker.stdin.write(encode_frame({**request, "id": 8}, b"\x00"))  # half a sample
        worker.stdin.flush()
        reply = read_frame(worker.stdout)
        assert reply is not None and reply[0]["id"] == 7 and reply[0]["text"] == "sales"
        error = read_frame(worker.stdout)
        assert error is not None and error[0]["type"] == "error" and error[0]["id"] == 8
        worker.stdin.write(header(0, version=PROTOCOL_VERSION + 1))
        _, stderr = worker.communicate(timeout=WAIT)
        assert worker.returncode == 2
        assert b"protocol version" in stderr
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
