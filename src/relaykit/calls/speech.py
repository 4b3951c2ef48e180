"""Speech recognition off the media clock.

pocketsphinx holds the GIL while it decodes (10–100 ms per utterance), so decoding in a thread
of the server would still stall the 20 ms clock of every call. With ``processes > 0`` utterances
are decoded by worker processes, each ``python -m relaykit.calls.speech_worker`` with its own
recogniser, spoken to over pipes. They never import the user's ``__main__`` (a multiprocessing
pool does, and breaks on a script without a main guard). A custom recogniser passed by the user
runs in threads instead, as it cannot be sent to another process; ``inline`` decodes on the event
loop itself, for tests whose clock is fast-forwarded.

Wire format (both directions)
    A frame is a 16-byte header — magic ``RKSW``, protocol version (1), three zero bytes, then
    the lengths of the JSON metadata and of the binary payload (big-endian uint32 each) — then
    the UTF-8 JSON object, then the payload. A worker first sends ``{"type": "ready", "pid",
    "load_seconds"}``. A request is ``{"type": "decode", "id", "language", "hints", "final",
    "engine"}`` (``engine``: auto, pocketsphinx or whisper; absent means auto) with the audio
    as payload (little-endian int16, 16 kHz mono); the reply, ``{"type": "result", "id",
    "text", "confidence", "engine", "cpu_seconds"}`` or ``{"type": "error", "id", "error"}``,
    has none. The worker's engines and models come from :class:`SpeechConfig` as JSON in its
    ``RELAYKIT_SPEECH_CONFIG`` environment variable.

Workers
    Each of the ``processes`` slots keeps one worker busy with one utterance at a time; other
    requests wait in a queue (first come, first served), so at most ``processes`` decodes run
    at once whatever the number of calls, and the media clock never waits for one.
    :meth:`SpeechRecognition.stats` counts them: decodes, the longest queue, queue wait and
    decode time. A worker that dies, or does not answer within ``timeout`` seconds
    (it is then killed), is replaced; the utterance it held comes back as nothing heard
    (``no_match``) with a logged error. Workers' stderr lines are logged here (warnings).
    ``close()`` kills and reaps every worker and answers every waiting request with nothing heard.
"""

from __future__ import annotations

__all__ = [
    "CONFIG_ENV",
    "PROTOCOL_VERSION",
    "SpeechRecognition",
    "SpeechStats",
    "WireError",
    "decode_utterance",
    "encode_frame",
    "read_frame",
]

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import site
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import MediaError
from ..media.asr import DEFAULT_MIN_CONFIDENCE, Recognizer
from ..media.engines import SpeechConfig, SpeechEngines

log = logging.getLogger(__name__)

Decoded = tuple[str | None, float]
NOTHING: Decoded = (None, 0.0)

PROTOCOL_VERSION = 1
WORKER_MODULE = "relaykit.calls.speech_worker"
CONFIG_ENV = "RELAYKIT_SPEECH_CONFIG"
_MAGIC = b"RKSW"
_HEADER = struct.Struct(">4sB3xII")
MAX_META = 1 << 20
MAX_PAYLOAD = 64 << 20  # ~35 min of audio; recognisers keep 30 s at most


def decode_utterance(
    recognizer: Recognizer | SpeechEngines,
    language: str,
    hints: Sequence[str],
    audio: np.ndarray,
    final: bool,
    engine: str | None = None,
) -> Decoded:
    """Decode one utterance: ``final`` gives the result, otherwise the partial text (or None).

    With :class:`SpeechEngines`, ``engine`` picks the recogniser (None: the configured one).
    """
    if isinstance(recognizer, SpeechEngines):
        utterance = recognizer.open(engine=engine, language=language, hints=tuple(hints))
    else:
        utterance = recognizer.open(language=language, hints=tuple(hints))
    try:
        utterance.feed(audio)
        if not final:
            return utterance.partial() or None, 0.0
        result = utterance.finish()
    finally:
        utterance.close()
    return NOTHING if result is None else (result.text, result.confidence)


# --------------------------------------------------------------------------- wire format


class Readable(Protocol):
    """A blocking byte stream (a pipe, a file, ``BytesIO``)."""

    def read(self, size: int = -1, /) -> bytes: ...


class WireError(MediaError):
    """A frame between the server and a speech worker does not follow the protocol."""


def encode_frame(meta: dict[str, Any], payload: bytes = b"") -> bytes:
    """One frame: header, JSON ``meta``, ``payload``."""
    body = json.dumps(meta, separators=(",", ":")).encode()
    if len(body) > MAX_META or len(payload) > MAX_PAYLOAD:
        raise WireError(f"frame too large: {len(body)} bytes of JSON, {len(payload)} of payload")
    return _HEADER.pack(_MAGIC, PROTOCOL_VERSION, len(body), len(payload)) + body + payload


def _parse_header(header: bytes) -> tuple[int, int]:
    magic, version, meta_len, payload_len = _HEADER.unpack(header)
    if magic != _MAGIC:
        raise WireError(f"not a speech worker frame (starts with {header[:4]!r})")
    if version != PROTOCOL_VERSION:
        raise WireError(f"protocol version {version}; this side speaks {PROTOCOL_VERSION}")
    if meta_len > MAX_META or payload_len > MAX_PAYLOAD:
        raise WireError(f"frame too large: {meta_len} bytes of JSON, {payload_len} of payload")
    return meta_len, payload_len


def _parse_meta(body: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(body)
    except ValueError as exc:  # bad UTF-8 or bad JSON
        raise WireError(f"frame metadata is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise WireError("frame metadata is not a JSON object")
    return meta


def _read_exactly(stream: Readable, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_frame(stream: Readable) -> tuple[dict[str, Any], bytes] | None:
    """The next frame of a blocking stream, or None when the stream ends between frames."""
    header = _read_exactly(stream, _HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise WireError(f"stream ended inside a frame header ({len(header)} bytes)")
    meta_len, payload_len = _parse_header(header)
    body = _read_exactly(stream, meta_len + payload_len)
    if len(body) < meta_len + payload_len:
        raise WireError(f"stream ended inside a frame ({len(body)} of {meta_len + payload_len})")
    return _parse_meta(body[:meta_len]), body[meta_len:]


async def _read_frame_async(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes] | None:
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise WireError(f"stream ended inside a frame header ({len(exc.partial)} bytes)") from None
    meta_len, payload_len = _parse_header(header)
    try:
        body = await reader.readexactly(meta_len + payload_len)
    except asyncio.IncompleteReadError as exc:
        raise WireError(f"stream ended inside a frame ({len(exc.partial)} bytes)") from None
    return _parse_meta(body[:meta_len]), body[meta_len:]


# --------------------------------------------------------------------------- worker processes


def _worker_command() -> list[str]:
    if not sys.executable:
        raise OSError("no Python interpreter to run speech workers with (sys.executable is empty)")
    # -P: the working directory is not put on sys.path, so no user module shadows ours
    return [sys.executable, "-P", "-m", WORKER_MODULE]


def _worker_env() -> dict[str, str]:
    """This environment, plus relaykit's directory on PYTHONPATH unless it is a site directory.

    A script that found relaykit through its own ``sys.path`` changes still gets workers that
    find it; an installed relaykit does not put site-packages ahead of the standard library.
    """
    env = dict(os.environ)
    root = os.path.realpath(Path(__file__).parents[2])
    sites = [*site.getsitepackages(), site.getusersitepackages()]
    if root not in {os.path.realpath(s) for s in sites}:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    return env


def _end_process(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Kill ``proc`` unless it has exited, reap it; its exit code (None if it would not die)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.error("! speech worker %d still runs %g s after SIGKILL", proc.pid, timeout)
        return None


class _WorkerLost(Exception):
    """A worker ended, broke the protocol or stopped answering."""


class _Worker:
    """One decoding process: its pipes, and the tasks reading its replies and its stderr."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        self.gone = asyncio.Event()  # its output ended: it died, or is dying
        self.why_gone = ""
        self.ready_at = math.inf
        self._reply: asyncio.Future[dict[str, Any] | None] | None = None
        self._last_id = 0
        self._stdin: asyncio.WriteTransport | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        loop = asyncio.get_running_loop()
        replies, errors = asyncio.StreamReader(), asyncio.StreamReader()
        for reader, pipe in ((replies, self.proc.stdout), (errors, self.proc.stderr)):
            protocol = functools.partial(asyncio.StreamReaderProtocol, reader)
            transport, _ = await loop.connect_read_pipe(protocol, pipe)
            self._transports.append(transport)
        self._stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, self.proc.stdin)
        self._transports.append(self._stdin)
        self._tasks = [
            loop.create_task(self._read_replies(replies)),
            loop.create_task(self._log_stderr(errors)),
        ]

    async def request(self, meta: dict[str, Any], payload: bytes, timeout: float) -> dict[str, Any]:
        if self.gone.is_set() or self._stdin is None:
            raise _WorkerLost(self.why_gone or "is not connected")
        self._last_id += 1
        reply = self._reply = asyncio.get_running_loop().create_future()
        self._stdin.write(encode_frame({**meta, "id": self._last_id}, payload))
        try:
            answer: dict[str, Any] | None = await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            raise _WorkerLost(f"gave no answer in {timeout:g} s") from None
        finally:
            self._reply = None
        if answer is None:
            raise _WorkerLost(self.why_gone)
        if answer.get("id") != self._last_id:
            raise _WorkerLost(f"answered request {answer.get('id')!r}, not {self._last_id}")
        return answer

    async def wait_stderr(self, timeout: float) -> None:
        """Let the stderr task log what the process wrote before it ended (a traceback)."""
        if len(self._tasks) == 2:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[1]), timeout)

    def close_pipes(self, loop_alive: bool) -> None:
        for task in self._tasks:
            if loop_alive:
                task.cancel()
        if loop_alive:
            for transport in self._transports:
                transport.close()
        owned = {t.get_extra_info("pipe") for t in self._transports} if loop_alive else set()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and pipe not in owned:
                pipe.close()

    def _lose(self, why: str) -> None:
        if not self.gone.is_set():
            self.why_gone = why
            self.gone.set()
        for future in (self.ready, self._reply):
            if future is not None and not future.done():
                future.set_result(None)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        why = "ended"
        try:
            while (frame := await _read_frame_async(reader)) is not None:
                meta, _ = frame
                if not self.ready.done():
                    if meta.get("type") != "ready":
                        raise WireError(f"its first frame is {meta.get('type')!r}, not 'ready'")
                    self.ready_at = time.monotonic()
                    self.ready.set_result(meta)
                elif self._reply is not None and not self._reply.done():
                    self._reply.set_result(meta)
                else:
                    raise WireError(f"it sent {meta.get('type')!r} when nothing was asked")
        except WireError as exc:
            why = f"broke the protocol ({exc})"
        finally:
            self._lose(why)

    async def _log_stderr(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than the reader's limit; it was dropped
                log.warning("speech worker %d: (an overlong stderr line was dropped)", self.pid)
                continue
            if not line:
                return
            if text := line.decode(errors="replace").rstrip():
                log.warning("speech worker %d: %s", self.pid, text)


@dataclass
class SpeechStats:
    """Counts of the decodes a :class:`SpeechRecognition` ran (all times in seconds)."""

    decodes: int = 0  # requests answered by a worker (final and partial)
    queued: int = 0  # requests waiting now
    max_queued: int = 0  # the longest the queue has been
    wait_total: float = 0.0  # time requests spent queued
    wait_max: float = 0.0
    decode_total: float = 0.0  # time from a worker taking a request to its answer
    decode_max: float = 0.0
    cpu_total: float = 0.0  # CPU the workers report spending on decodes
    second_opinions_skipped: int = 0  # hinted decodes sent without Whisper: the queue was long

    def as_dict(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.__dict__.items()}
        out["wait_mean"] = self.wait_total / self.decodes if self.decodes else 0.0
        out["decode_mean"] = self.decode_total / self.decodes if self.decodes else 0.0
        return out


@dataclass(eq=False)
class _Job:
    meta: dict[str, Any]
    payload: bytes
    future: asyncio.Future[Decoded]
    submitted: float = field(default_factory=time.monotonic)
    # a hinted ``auto`` decode: may go without Whisper's second opinion if the queue is long
    sheddable: bool = False

    def resolve(self, result: Decoded) -> None:
        if not self.future.done():
            self.future.set_result(result)


class _WorkerPool:
    """``size`` slots, each serving the request queue with one worker process at a time."""

    KILL_TIMEOUT = 5.0  # seconds allowed for a killed worker to be reaped
    # A slot whose workers keep dying idle soon after they start (QUICK_DEATHS in a row, each
    # within QUICK_DEATH s) starts the next one only when a request comes, not in a loop.
    QUICK_DEATH = 5.0
    QUICK_DEATHS = 3

    def __init__(
        self, size: int, timeout: float, start_timeout: float, env: dict[str, str]
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.env = env
        self.stats = SpeechStats()
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.workers: list[_Worker | None] = [None] * size
        self.in_flight: list[_Job | None] = [None] * size
        # set once each slot's first worker is ready (True) or failed to start (False)
        self.started: list[asyncio.Future[bool]] = [self.loop.create_future() for _ in range(size)]
        self.closed = False
        self._lock = threading.Lock()  # guards _procs and closed against the spawning threads
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self.tasks = [
            self.loop.create_task(self._serve(i), name=f"relaykit-speech-slot-{i}")
            for i in range(size)
        ]

    def submit(
        self, meta: dict[str, Any], payload: bytes, *, sheddable: bool = False
    ) -> asyncio.Future[Decoded]:
        future: asyncio.Future[Decoded] = self.loop.create_future()
        if self.closed:
            future.set_result(NOTHING)
        else:
            self.queue.put_nowait(_Job(meta, payload, future, sheddable=sheddable))
            self.stats.queued = self.queue.qsize()
            self.stats.max_queued = max(self.stats.max_queued, self.stats.queued)
        return future

    # -- a slot

    async def _serve(self, slot: int) -> None:
        worker = await self._start(slot)
        if not self.started[slot].done():
            self.started[slot].set_result(worker is not None)
        quick_deaths = 0
        while True:
            job = await self._next_job(worker)
            if job is None:  # the worker died while idle
                assert worker is not None
                quick = time.monotonic() - worker.ready_at < self.QUICK_DEATH
                quick_deaths = quick_deaths + 1 if quick else 0
                await self._retire(slot, worker, f"{worker.why_gone} while idle")
                worker = await self._start(slot) if quick_deaths < self.QUICK_DEATHS else None
                continue
            quick_deaths = 0
            self.stats.queued = self.queue.qsize()
            if job.future.done():  # its caller gave up while it waited
                continue
            if job.sheddable and self.queue.qsize() >= len(self.workers):
                # a burst came in after it: as at submission (SpeechRecognition._decode), the
                # grammar alone answers, so the requests behind it do not wait for Whisper
                job.meta["engine"] = "pocketsphinx"
                self.stats.second_opinions_skipped += 1
            waited = time.monotonic() - job.submitted
            self.stats.wait_total += waited
            self.stats.wait_max = max(self.stats.wait_max, waited)
            self.in_flight[slot] = job
            try:
                worker = await self._run(slot, worker, job)
            except Exception:  # a bug here must not leave the caller waiting
                log.exception("! speech slot %d failed", slot)
                if (current := self.workers[slot]) is not None:
                    await self._retire(slot, current, "was stopped after a server error")
                worker = None
            finally:
                self.in_flight[slot] = None
                job.resolve(NOTHING)

    async def _next_job(self, worker: _Worker | None) -> _Job | None:
        """The next request, or None if ``worker`` dies first."""
        if worker is None:
            return await self.queue.get()
        get = asyncio.ensure_future(self.queue.get())
        gone = asyncio.ensure_future(worker.gone.wait())
        try:
            await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not get.done():
                get.cancel()  # a cancelled get leaves its item in the queue
        return get.result() if get.done() and not get.cancelled() else None

    async def _run(self, slot: int, worker: _Worker | None, job: _Job) -> _Worker | None:
        """Decode ``job`` on ``worker`` (started if need be); the worker to keep using."""
        if worker is not None and worker.gone.is_set():  # died just as the job came
            await self._retire(slot, worker, f"{worker.why_gone} while idle")
            worker = None
        if worker is None:
            worker = await self._start(slot)
            if worker is None:
                return None  # logged; the job resolves to nothing heard
        began = time.monotonic()
        try:
            answer = await worker.request(job.meta, job.payload, self.timeout)
        except _WorkerLost as lost:
            what = f"{lost} while decoding; its utterance counts as not understood"
            await self._retire(slot, worker, what)
            job.resolve(NOTHING)  # now, not after the replacement has started
            return await self._start(slot)
        took = time.monotonic() - began
        self.stats.decodes += 1
        self.stats.decode_total += took
        self.stats.decode_max = max(self.stats.decode_max, took)
        self.stats.cpu_total += float(answer.get("cpu_seconds") or 0.0)
        if answer.get("type") == "error":
            if not job.future.done():
                job.future.set_exception(MediaError(f"speech worker: {answer.get('error')}"))
        else:
            text = answer.get("text")
            job.resolve((str(text) if text else None, float(answer.get("confidence") or 0.0)))
        return worker

    async def _start(self, slot: int) -> _Worker | None:
        began = time.monotonic()
        try:
            proc = await asyncio.to_thread(self._spawn)
        except Exception as exc:  # OSError mostly: no interpreter, no memory, no descriptors
            log.error("! cannot start a speech worker: %s", exc)
            return None
        if proc is None:  # closed meanwhile
            return None
        worker = self.workers[slot] = _Worker(proc)
        try:
            await worker.connect()
            hello = await asyncio.wait_for(asyncio.shield(worker.ready), self.start_timeout)
        except TimeoutError:
            hello = None
            worker.why_gone = f"was not ready after {self.start_timeout:g} s"
        except Exception as exc:
            hello = None
            worker.why_gone = f"could not be connected ({exc})"
        if hello is None:
            await self._retire(slot, worker, f"{worker.why_gone} before it was ready")
            return None
        log.debug(
            "speech worker %d ready %.2f s after its start (recogniser loaded in %.2f s)",
            worker.pid,
            time.monotonic() - began,
            float(hello.get("load_seconds", math.nan)),
        )
        return worker

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """Start a worker process (on a helper thread: forking may take milliseconds)."""
        with self._lock:
            if self.closed:
                return None
            proc = subprocess.Popen(
                _worker_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
            )
            self._procs[proc.pid] = proc
            return proc

    async def _retire(self, slot: int, worker: _Worker, what: str) -> None:
        """End ``worker`` (killed if it still runs) and reap it; log ``what`` happened.

        It stays listed (in ``workers`` and ``_procs``) until done, so that a ``close()``
        meanwhile kills and reaps it too.
        """
        with self._lock:
            proc = self._procs.get(worker.pid)
        if proc is None:  # close() has dealt with it
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        try:
            await worker.wait_stderr(1.0)
        finally:
            worker.close_pipes(loop_alive=True)
            if self.workers[slot] is worker:
                self.workers[slot] = None
        code = await asyncio.to_thread(_end_process, proc, self.KILL_TIMEOUT)
        with self._lock:
            self._procs.pop(worker.pid, None)
        log.error("! speech worker %d %s (exit code %s)", worker.pid, what, code)

    # -- the end

    def close(self) -> None:
        """Kill and reap every worker (at most KILL_TIMEOUT s), answer every request. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            procs = list(self._procs.values())
            self._procs.clear()
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        loop_alive = not self.loop.is_closed()
        for worker in self.workers:
            if worker is not None:
                worker.close_pipes(loop_alive)
        if loop_alive:
            for task in self.tasks:
                task.cancel()
            waiting = [job for job in self.in_flight if job is not None]
            while not self.queue.empty():
                waiting.append(self.queue.get_nowait())
            for job in waiting:
                job.resolve(NOTHING)
            for future in self.started:
                if not future.done():
                    future.set_result(False)
        deadline = time.monotonic() + self.KILL_TIMEOUT
        for proc in procs:
            _end_process(proc, max(0.0, deadline - time.monotonic()))


# --------------------------------------------------------------------------- the server's side


class SpeechRecognition:
    """Decodes utterances for the server; knows which engines and languages exist.

    ``recognizer``: a recogniser of one's own, used for every prompt in threads (then
    ``config`` is not used). Otherwise ``config`` (:class:`SpeechConfig`) chooses the
    engine per prompt and the model directories, and ``processes`` worker processes decode
    (0: worker threads). ``min_confidence``: final results below it are no match, unless a
    prompt says otherwise. ``timeout``: seconds a worker may take over one utterance before
    it is replaced. ``start_timeout``: seconds a new worker may take to load its recogniser.
    """

    def __init__(
        self,
        recognizer: Recognizer | None = None,
        *,
        processes: int = 2,
        inline: bool = False,
        timeout: float = 30.0,
        start_timeout: float = 60.0,
        config: SpeechConfig | None = None,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> None:
        self.config = config or SpeechConfig()
        self.min_confidence = float(min_confidence)
        # the server's own copy: answers what exists, and decodes when no process does;
        # recognizer: the user's, else pocketsphinx's US-English one (the test kit's ears)
        self.engines: SpeechEngines | None = None
        if recognizer is None:
            self.engines = SpeechEngines(self.config)
            recognizer = self.engines.pocketsphinx["en-us"]
        self.recognizer: Recognizer = recognizer
        self.processes = 0 if self.engines is None else max(0, processes)
        self.inline = inline  # decode on the event loop (deterministic fast-clock tests)
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._pool: _WorkerPool | None = None
        self._local_stats = SpeechStats()

    @property
    def languages(self) -> tuple[str, ...]:
        if self.engines is not None:
            return self.engines.languages
        return tuple(self.recognizer.languages)

    def supports(self, language: str) -> bool:
        """Whether ``language`` (``en-US``, ``en``…) is one some recogniser knows."""
        wanted = language.replace("_", "-").lower()
        return any(
            wanted == lang.lower() or wanted == lang.lower().split("-")[0]
            for lang in self.languages
        )

    def check(self, engine: str | None, language: str, hints: Sequence[str] = ()) -> str:
        """The engine a prompt will use; raises :class:`MediaError` or
        :class:`~relaykit.errors.UnsupportedLanguageError` when it cannot be served."""
        if self.engines is None:
            if engine not in (None, "", "auto"):
                raise MediaError(
                    f"speech engine {engine!r} cannot be chosen: this server uses "
                    f"its own recogniser ({type(self.recognizer).__name__})"
                )
            return "custom"
        return self.engines.choose(engine, language, tuple(hints))

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the running workers."""
        pool = self._pool
        return () if pool is None else tuple(w.pid for w in pool.workers if w is not None)

    def stats(self) -> dict[str, float]:
        """Decodes run so far, queue lengths and times (see :class:`SpeechStats`)."""
        return (self._pool.stats if self._pool is not None else self._local_stats).as_dict()

    async def decode(
        self,
        language: str,
        hints: Sequence[str],
        audio: np.ndarray,
        *,
        final: bool,
        engine: str | None = None,
        min_confidence: float | None = None,
    ) -> Decoded:
        """The text heard in ``audio`` (or None) and a 0–100 confidence.

        A final result below ``min_confidence`` (None: the server's) is None: no match.
        """
        if isinstance(hints, str):
            hints = (hints,)
        decoded = await self._decode(language, tuple(hints), audio, final, engine)
        threshold = self.min_confidence if min_confidence is None else float(min_confidence)
        if final and decoded[0] is not None and decoded[1] < threshold:
            log.debug("speech result %r at %.1f is under %.1f: no match", *decoded, threshold)
            return NOTHING
        return decoded

    async def _decode(
        self,
        language: str,
        hints: tuple[str, ...],
        audio: np.ndarray,
        final: bool,
        engine: str | None,
    ) -> Decoded:
        local = self.engines if self.engines is not None else self.recognizer
        if self.inline or self.processes <= 0:
            began = time.monotonic()
            if self.inline:
                result = decode_utterance(local, language, hints, audio, final, engine)
            else:
                result = await asyncio.to_thread(
                    decode_utterance, local, language, hints, audio, final, engine
                )
            took = time.monotonic() - began
            self._local_stats.decodes += 1
            self._local_stats.decode_total += took
            self._local_stats.decode_max = max(self._local_stats.decode_max, took)
            return result
        pcm = np.asarray(audio)
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {pcm.dtype}")
        pool = self._workers()
        engine = engine or "auto"
        sheddable = bool(
            final and hints and engine == "auto" and self._second_opinion(language, hints)
        )
        if sheddable and pool.queue.qsize() >= self.processes:
            # as many requests waiting as there are workers: Whisper's ~0.5 s second opinion
            # would hold every answer behind it up, so this one is the grammar's alone (and a
            # request still waiting with as many behind it when its turn comes, likewise)
            engine = "pocketsphinx"
            sheddable = False
            pool.stats.second_opinions_skipped += 1
        meta = {
            "type": "decode",
            "language": str(language),
            "hints": [str(h) for h in hints],
            "final": bool(final),
            "engine": engine,
        }
        payload = pcm.astype("<i2", copy=False).tobytes()
        if len(payload) > MAX_PAYLOAD:
            raise MediaError(f"utterance of {len(pcm) / 16000:.0f} s is too long to decode")
        return await pool.submit(meta, payload, sheddable=sheddable)

    def _second_opinion(self, language: str, hints: tuple[str, ...]) -> bool:
        """Whether a hinted ``auto`` decode may get Whisper's second opinion."""
        engines = self.engines
        if engines is None or engines.config.engine != "auto" or not engines.whisper_installed:
            return False
        try:
            return engines.choose("auto", language, hints) == "pocketsphinx"
        except MediaError:  # e.g. a language no engine has: the worker reports it
            return False

    def prepare(self) -> None:
        """Start the worker processes now (a speech prompt began), not at its first utterance.

        Returns at once: processes are started from a helper thread and load their recognisers
        on their own, so the media clock does not notice.
        """
        if self.processes > 0 and not self.inline:
            self._workers()

    async def warm_up(self) -> int:
        """Start the workers if need be and wait until each is ready or failed; how many ready."""
        if self.processes <= 0 or self.inline:
            return 0
        pool = self._workers()
        await asyncio.gather(*(asyncio.shield(f) for f in pool.started))
        return len(self.worker_pids)

    def _workers(self) -> _WorkerPool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool.loop is not loop:
            self.close()  # its event loop is gone (e.g. a server restarted by a new asyncio.run)
        if self._pool is None:
            env = _worker_env()
            env[CONFIG_ENV] = self.config.to_json()
            self._pool = _WorkerPool(self.processes, self.timeout, self.start_timeout, env)
        return self._pool

    def close(self) -> None:
        """Kill and reap the workers; waiting requests get nothing heard. Idempotent.

        From a thread other than that of the running event loop the workers' loop does it soon
        after, not before this returns.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is not pool.loop and pool.loop.is_running():
            pool.loop.call_soon_threadsafe(pool.close)
        else:
            pool.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        where = f"{self.processes} processes" if self.processes else "threads"
        what = f"engine={self.config.engine}" if self.engines else type(self.recognizer).__name__
        return f"<SpeechRecognition {what} in {where}>"
