"""One benchmark scenario in a fresh process: the server and the virtual callers live here, the
IVR consumer in a child process. ``python -m benchmarks.worker '<json spec>'`` prints one line,
``RESULT <json>``, and progress on stderr. ``benchmarks/__main__.py`` runs one worker per row so
that every row's CPU and peak RSS belong to that row alone.

Conventions used by every scenario:

* A frame's *due time* is when the media clock should have processed it (``loop.time()`` minus
  that tick's lateness). Caller audio is taken to arrive in real time, so the first sample of
  frame ``f`` arrives 20 ms before frame ``f`` is due (the frame is complete when it is due).
* Caller audio is pushed onto an idle line at a known frame, in whole frames, so the frame in
  which each tone or word starts is known exactly.
* Once its prompt has started, a caller's line carries audio (silence between the keys or words
  and after them) until it hangs up, as a telephone line does; every call is then in the DTMF
  detector's batch every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

import benchmarks  # noqa: F401  (sets OPENBLAS_NUM_THREADS before numpy is imported)
from benchmarks import experiments
from benchmarks._common import (
    PROJECT,
    TOKEN,
    App,
    Burner,
    SystemCpu,
    ms,
    peer_python,
    percentile,
    status_kib,
    tree_cpu_seconds,
    tree_peak_rss_kib,
)
from relaykit import RelayServer
from relaykit.calls import CallEvent, MediaStarted, TranscriptEntry
from relaykit.media.dtmf import generate_dtmf
from relaykit.media.engine import KeyDetected, PlaybackEvent
from relaykit.media.frames import FRAME_SECONDS, SAMPLES_PER_FRAME
from relaykit.testing import VirtualCaller

PIN_PROMPT = "Please enter your 4 digit PIN, then press pound"
MENU_PROMPT = "Say sales or support"
DIGIT_PROMPT = "Enter a digit"
KEY_FRAMES = 10  # press(): 100 ms tone + 100 ms gap per key
WORDS = ("sales", "support")


def log(message: str) -> None:
    print(f"    [worker] {message}", file=sys.stderr, flush=True)


# -- the server, with a recorder on its media clock ---------------------------------------------
def server_options(record_calls: bool) -> dict[str, Any]:
    """One consumer drives every call here, so the per-connection abuse limits (request rate,
    outbox, calls per session) are lifted; options this server version lacks are left out."""
    wanted: dict[str, Any] = {
        "record_calls": record_calls,
        "max_request_rate": 1e9,
        "max_request_burst": 10**9,
        "max_outbox": 10**7,
        "max_outbox_bytes": 1 << 40,
        "max_calls_per_session": 10**6,
        "hold_gc": True,  # a server that owns its process, as `relaykit serve` runs it
    }
    accepted = inspect.signature(RelayServer).parameters
    return {k: v for k, v in wanted.items() if k in accepted}


class Bench:
    """A RelayServer whose clock ticks are timed: due time and start of every frame, busy time."""

    def __init__(self, *, record_calls: bool, experiment: str | None = None) -> None:
        """``experiment``: server-side experiments patched in for the whole run."""
        self.server = RelayServer(credentials={PROJECT: TOKEN}, **server_options(record_calls))
        self.due: dict[int, float] = {}
        self.started: dict[int, float] = {}
        self.busy: list[float] = []  # seconds from tick start to end of event dispatch
        self.watch: set[str] = set()  # call ids whose key and barge-in events are kept
        self.marks: list[tuple[int, Any]] = []  # (frame, event)
        self._tick_start = 0.0
        engine = self.server.engine
        clock = self.server.clock
        tick, dispatch = engine.tick, clock.dispatch
        server = self.server

        def timed_tick() -> list[Any]:
            frame = engine.frame
            now = time.monotonic()
            self._tick_start = now
            self.started[frame] = now
            self.due[frame] = now - (server.lateness[-1] if server.lateness else 0.0)
            events = tick()
            if self.watch:
                for event in events:
                    if event.call_id in self.watch and isinstance(
                        event, KeyDetected | PlaybackEvent
                    ):
                        self.marks.append((frame, event))
            return events

        def timed_dispatch(events: list[Any]) -> None:
            dispatch(events)
            if self._tick_start:
                self.busy.append(time.monotonic() - self._tick_start)
                self._tick_start = 0.0

        engine.tick = timed_tick  # type: ignore[method-assign]
        clock.dispatch = timed_dispatch
        experiments.apply_server(experiment)

    async def __aenter__(self) -> Bench:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    def arrival(self, frame: int, sample: int = 0) -> float:
        """When sample ``sample`` of a chunk pushed at ``frame`` arrived (monotonic seconds)."""
        f = frame + sample // SAMPLES_PER_FRAME
        return self.due[f] - FRAME_SECONDS + (sample % SAMPLES_PER_FRAME) / 16000

    async def start_speech_workers(self, timeout: float = 60.0) -> None:
        """Start the speech decoding processes and wait until each has warmed its recogniser.

        The server starts them when its first speech prompt begins; here it happens before
        anything is measured, as the TTS cache is warmed before a run."""
        speech = self.server.speech
        if speech.processes <= 0:
            return
        ready = await asyncio.wait_for(speech.warm_up(), timeout)
        if ready < speech.processes:
            log(f"only {ready} of {speech.processes} speech processes up")

    def push(self, caller: VirtualCaller, *chunks: np.ndarray) -> int:
        """Queue audio on the caller's idle line; returns the frame that reads its first sample."""
        media = self.server.calls[caller.call_id].media
        if media.inbound_pending:
            raise RuntimeError("push() expects an idle line")
        frame = self.server.engine.frame
        for chunk in chunks:
            media.push_inbound(chunk)
        return frame


def watch_transcript(
    caller: VirtualCaller, predicate: Callable[[TranscriptEntry], bool]
) -> asyncio.Future[float]:
    """A future set to time.monotonic() at the first transcript entry matching ``predicate``."""
    future: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def listener(entry: TranscriptEntry) -> None:
        if not future.done() and predicate(entry):
            future.set_result(time.monotonic())

    stop = caller.on_transcript(listener)
    future.add_done_callback(lambda _: stop())  # watch no longer than needed
    return future


def _ivr_plays(entry: TranscriptEntry) -> bool:
    return entry.actor == "ivr" and entry.text.startswith("plays ")


def _prompt_ends(entry: TranscriptEntry) -> bool:
    return entry.actor == "ivr" and entry.text.startswith("prompt ends")


def _zeros(seconds: float) -> np.ndarray:
    z = np.zeros(round(seconds * 16000), dtype=np.int16)
    z.flags.writeable = False
    return z


# Shared read-only audio: every call's line is made of views of these, so the callers cost the
# server process no memory per call.
_KEYS = {k: generate_dtmf(k) for k in "0123456789#*"}
_TAIL = _zeros(120.0)
_SILENCE = _zeros(60.0)


def _trimmed(samples: np.ndarray, threshold: int = 200) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    out = samples[loud[0] : loud[-1] + 1] if loud.size else samples
    out = np.ascontiguousarray(out, dtype=np.int16)
    out.flags.writeable = False
    return out


class Window:
    """CPU, wall time and machine load between start() and stop(), for us and the consumer."""

    def __init__(self, bench: Bench, app: App | None, others: set[int] | None = None) -> None:
        """``others``: processes of ours that are not the server's (made load)."""
        self.bench, self.app, self.others = bench, app, others or set()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.exclude = ({self.app.pid} if self.app else set()) | self.others
        self.cpu0 = tree_cpu_seconds(self.exclude)
        self.app_cpu0 = self.app.cpu_seconds() if self.app else 0.0
        self.system = SystemCpu()
        self.lateness0 = len(self.bench.server.lateness)
        self.busy0 = len(self.bench.busy)
        self.late_frames0 = self.bench.server.late_frames

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        cpu = tree_cpu_seconds(self.exclude) - self.cpu0
        app_cpu = (self.app.cpu_seconds() - self.app_cpu0) if self.app else 0.0
        total = self.system.cores_busy()
        lateness = self.bench.server.lateness[self.lateness0 :]
        busy = self.bench.busy[self.busy0 :]
        return {
            "wall_s": wall,
            "server_cpu_pct": 100 * cpu / wall,
            "consumer_cpu_pct": 100 * app_cpu / wall,
            "other_cpu_pct": max(0.0, 100 * total - 100 * (cpu + app_cpu) / wall),
            "ticks": len(lateness),
            "late_p50_ms": ms(percentile(lateness, 50)),
            "late_p99_ms": ms(percentile(lateness, 99)),
            "late_max_ms": ms(max(lateness)) if lateness else None,
            "late_frames": self.bench.server.late_frames - self.late_frames0,
            "busy_mean_ms": ms(sum(busy) / len(busy)) if busy else None,
            "busy_p99_ms": ms(percentile(busy, 99)),
        }


async def _start_app(
    bench: Bench,
    script: str,
    mode: str,
    context: str,
    experiment: str | None = None,
    **options: Any,
) -> App:
    python = sys.executable
    if script.startswith("signalwire"):
        peer = peer_python()
        if peer is None:
            raise RuntimeError("the signalwire 2.1.1 venv is missing")
        python = str(peer)
    app = await App.start(
        script,
        url=bench.server.url,
        context=context,
        mode=mode,
        options=options,
        python=python,
        experiment=experiment,
    )
    ready = await app.wait_event("ready", timeout=60)
    if experiment and ready.get("experiment") != experiment:
        await app.stop()
        raise RuntimeError(f"{script} did not apply the experiment {experiment!r}")
    return app


async def _summary(app: App, want_calls: int = 0, timeout: float = 20.0) -> dict[str, Any]:
    """The app's summary, asked again until it holds ``want_calls`` results (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        summary = await app.command("report", "summary")
        if len(summary["calls"]) >= want_calls or time.monotonic() > deadline:
            return summary
        await asyncio.sleep(0.2)


async def _hangup_all(callers: list[VirtualCaller]) -> None:
    for i, caller in enumerate(callers):
        await caller.hangup()
        if i % 200 == 199:
            await asyncio.sleep(0)


# -- 2 and 3: media and speech concurrency ------------------------------------------------------
async def concurrency(spec: dict[str, Any]) -> dict[str, Any]:
    """N calls arrive at ``rate`` per second; each IVR answers and runs one prompt; once all are
    up, each caller answers its prompt at a random moment in a ``spread``-second window."""
    kind: str = spec["kind"]  # "digits" or "speech"
    n: int = spec["n"]
    rate: float = spec.get("rate", 200.0)
    spread: float = spec.get("spread", 2.0)
    rng = random.Random(spec.get("seed", 1))
    async with Bench(record_calls=False, experiment=spec.get("experiment")) as bench:
        server = bench.server
        tts = server.loader.tts
        tts.synthesize(PIN_PROMPT if kind == "digits" else MENU_PROMPT)  # warm the cache
        words = {w: _trimmed(tts.synthesize(w)) for w in WORDS}
        if kind == "speech":
            await bench.start_speech_workers()
        app = await _start_app(bench, "relaykit_ivr.py", kind, "bench", spec.get("experiment"))
        gc.collect()
        rss0 = status_kib("VmRSS")
        burner = Burner(spec["load"]) if spec.get("load") else None
        window = Window(bench, app, {burner.pid} if burner else None)
        window.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        t_inputs = t0 + n / rate + 1.0 + n / 1000
        callers: list[VirtualCaller] = []
        plan: dict[str, dict[str, Any]] = {}
        failures: list[str] = []

        async def one_call(i: int) -> None:
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            caller = await server.dial_in("bench", timeout=60)
            callers.append(caller)
            playing = watch_transcript(caller, _ivr_plays)
            ended = watch_transcript(caller, _prompt_ends)
            await caller.wait_answered(timeout=60)
            await asyncio.wait_for(playing, 60)
            wait = t_inputs + rng.uniform(0, spread) - loop.time()
            delay = max(5, round(wait / FRAME_SECONDS))  # frames of line silence first
            head = _SILENCE[: delay * SAMPLES_PER_FRAME + rng.randrange(SAMPLES_PER_FRAME)]
            if kind == "digits":
                pin = "".join(rng.choice("0123456789") for _ in range(4))
                frame = bench.push(caller, head, *(_KEYS[k] for k in pin + "#"), _TAIL)
                # the terminator's tone starts 4 keys after the first
                onset = (frame, len(head) + 4 * KEY_FRAMES * SAMPLES_PER_FRAME)
                plan[caller.call_id] = {"expect": pin, "onset": onset}
            else:
                word = rng.choice(WORDS)
                audio = words[word]
                frame = bench.push(caller, head, audio, _TAIL)
                end = (frame, len(head) + len(audio))
                plan[caller.call_id] = {"expect": word, "speech_end": end}
            plan[caller.call_id]["server_done"] = await asyncio.wait_for(ended, 120)

        results = await asyncio.gather(*(one_call(i) for i in range(n)), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                failures.append(repr(r))
        stats = window.stop()
        if burner is not None:
            burner.stop()
            stats["made_load_pct"] = 100 * burner.share
        peak = tree_peak_rss_kib({app.pid})  # with the speech decoding processes, if any
        app_peak = app.peak_rss_kib()
        summary = await _summary(app, want_calls=len(plan))
        await _hangup_all(callers)
        await app.stop()

    correct = 0
    latencies: list[float] = []
    wrong: list[str] = []
    for call_id, p in plan.items():
        got = summary["calls"].get(call_id)
        if got is None:
            wrong.append(f"{call_id[:8]}: no result")
            continue
        rtype, value, extra, reason, t_sdk = got
        if kind == "digits":
            ok = rtype == "digit" and value == p["expect"] and extra == "#"
            if ok:
                latencies.append(t_sdk - bench.arrival(*p["onset"]))
        else:
            ok = rtype == "speech" and value == p["expect"]
            if ok:
                # processing delay beyond the protocol's own end_silence_timeout (1 s)
                latencies.append(t_sdk - bench.arrival(*p["speech_end"]) - 1.0)
        if ok:
            correct += 1
        elif len(wrong) < 10:
            wrong.append(f"expected {p['expect']!r}, got {rtype} {value!r} {extra!r} ({reason})")
    return {
        "scenario": kind,
        "n": n,
        "rate": rate,
        "spread": spread,
        **stats,
        "peak_rss_mib": peak / 1024,
        "baseline_rss_mib": rss0 / 1024,
        "consumer_peak_rss_mib": app_peak / 1024,
        "correct": correct,
        "wrong": wrong,
        "failures": failures[:10],
        "app_errors": summary["errors"],
        "lat_p50_ms": ms(percentile(latencies, 50)),
        "lat_p95_ms": ms(percentile(latencies, 95)),
        "lat_p99_ms": ms(percentile(latencies, 99)),
    }


# -- 4: latency ----------------------------------------------------------------------------------
async def latency(spec: dict[str, Any]) -> dict[str, Any]:
    """Light load: ``batch`` calls at a time; each caller keys a PIN 0.5 s into the prompt's TTS
    (barge-in) and the call is recorded."""
    samples: int = spec["samples"]
    batch: int = spec.get("batch", 10)
    rng = random.Random(spec.get("seed", 2))
    async with Bench(record_calls=True, experiment=spec.get("experiment")) as bench:
        server = bench.server
        server.loader.tts.synthesize(PIN_PROMPT)
        app = await _start_app(bench, "relaykit_ivr.py", "digits", "bench", spec.get("experiment"))
        window = Window(bench, app)
        window.start()
        plan: dict[str, dict[str, Any]] = {}

        async def one_call() -> None:
            caller = await server.dial_in("bench", timeout=30)
            bench.watch.add(caller.call_id)
            playing = watch_transcript(caller, _ivr_plays)
            ended = watch_transcript(caller, _prompt_ends)
            await caller.wait_answered(timeout=30)
            await asyncio.wait_for(playing, 30)
            await asyncio.sleep(0.5 + rng.uniform(0, 0.1))
            pin = "".join(rng.choice("0123456789") for _ in range(4))
            lead = rng.randrange(SAMPLES_PER_FRAME)  # tones start anywhere within a frame
            frame = bench.push(caller, _SILENCE[:lead], *(_KEYS[k] for k in pin + "#"))
            await asyncio.wait_for(ended, 30)
            await asyncio.sleep(0.2)
            media = server.calls[caller.call_id].media
            plan[caller.call_id] = {
                "expect": pin,
                "frame": frame,
                "lead": lead,
                "start_frame": media.start_frame,
                "recording": caller.recording(),
            }
            await caller.hangup()

        for first in range(0, samples, batch):
            await asyncio.gather(*(one_call() for _ in range(min(batch, samples - first))))
        stats = window.stop()
        summary = await _summary(app, want_calls=len(plan))
        await app.stop()

    by_call: dict[str, list[tuple[int, Any]]] = {}
    for frame, event in bench.marks:
        by_call.setdefault(event.call_id, []).append((frame, event))
    total, detect, deliver, barge, silent = [], [], [], [], []
    correct = 0
    for call_id, p in plan.items():
        got = summary["calls"].get(call_id)
        marks = by_call.get(call_id, [])
        keys = [(f, e) for f, e in marks if isinstance(e, KeyDetected)]
        stops = [f for f, e in marks if isinstance(e, PlaybackEvent) and e.cause == "barge_in"]
        if got is None or len(keys) < 5:
            continue
        rtype, value, term, _reason, t_sdk = got
        if not (rtype == "digit" and value == p["expect"] and term == "#"):
            continue
        correct += 1
        onset = bench.arrival(p["frame"], p["lead"] + 4 * KEY_FRAMES * SAMPLES_PER_FRAME)
        det_frame = keys[4][0]
        total.append(t_sdk - onset)
        detect.append(bench.due[det_frame] - onset)  # media time: due times are 20 ms apart
        deliver.append(t_sdk - bench.started[det_frame])
        if stops:
            barge.append((stops[0] - keys[0][0]) * FRAME_SECONDS)
        rec = p["recording"]
        first = np.flatnonzero(rec[:, 0])
        if first.size:
            onset = int(first[0])
            out = rec[:, 1]
            nonzero = np.flatnonzero(out[onset:])
            # first frame boundary after which the IVR's audio stays silent
            last_loud = onset + (int(nonzero[-1]) if nonzero.size else -1)
            silent_from = (last_loud // SAMPLES_PER_FRAME + 1) * SAMPLES_PER_FRAME
            silent.append(max(0, silent_from - onset) / 16000)
    return {
        "scenario": "latency",
        "samples": samples,
        "batch": batch,
        "correct": correct,
        **stats,
        "key_sdk": [ms(percentile(total, q)) for q in (50, 95, 99)],
        "key_detect": [ms(percentile(detect, q)) for q in (50, 95, 99)],
        "key_deliver": [ms(percentile(deliver, q)) for q in (50, 95, 99)],
        "barge_clock": [ms(percentile(barge, q)) for q in (50, 95, 99)],
        "barge_recording": [ms(percentile(silent, q)) for q in (50, 95, 99)],
    }


# -- 4c and 5a: the SDKs in turn against one server ------------------------------------------------
SCRIPTS = {"ours": "relaykit_ivr.py", "exp": "relaykit_ivr.py", "peer": "signalwire_ivr.py"}


def contenders(spec: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """Who takes turns: the tree ("ours") and, with an experiment, the variant ("exp");
    otherwise the signalwire 2.1.1 peer when asked for and installed."""
    if spec.get("experiment"):
        out["experiment"] = spec["experiment"]
        out["peer_skipped"] = "experiment run: the tree against the variant"
        return ["ours", "exp"]
    if spec.get("peer") and peer_python() is not None:
        return ["ours", "peer"]
    out["peer_skipped"] = "venv missing" if spec.get("peer") else "not asked"
    return ["ours"]


@contextlib.asynccontextmanager
async def turn(
    bench: Bench, label: str, spec: dict[str, Any], mode: str, context: str, **options: Any
) -> AsyncIterator[App]:
    """One contender's app, running; for "exp" the experiment is patched into both sides."""
    experiment = spec.get("experiment") if label == "exp" else None
    undo = experiments.apply_server(experiment)
    try:
        app = await _start_app(bench, SCRIPTS[label], mode, context, experiment, **options)
        try:
            yield app
        finally:
            await app.stop()
    finally:
        undo()


async def rtt(spec: dict[str, Any]) -> dict[str, Any]:
    count: int = spec["count"]
    out: dict[str, Any] = {"scenario": "rtt", "count": count}
    async with Bench(record_calls=False) as bench:
        for label in contenders(spec, out):
            async with turn(bench, label, spec, "rtt", f"rtt-{label}", count=count) as app:
                caller = await bench.server.dial_in(f"rtt-{label}", timeout=30)
                await app.wait_event("rtt_done", timeout=120)
                summary = await _summary(app)
                await caller.hangup()
            rtts = summary["rtts"]
            out[label] = [ms(percentile(rtts, q)) for q in (50, 99)] + [len(rtts)]
    return out


# -- 5b: memory per idle call --------------------------------------------------------------------
async def idle(spec: dict[str, Any]) -> dict[str, Any]:
    n: int = spec["n"]
    hold: float = spec.get("hold", 3.0)
    record = spec.get("record_calls", True)
    async with Bench(record_calls=record) as bench:
        app = await _start_app(bench, "relaykit_ivr.py", "idle", "bench")
        await asyncio.sleep(0.5)
        gc.collect()
        rss0, app_rss0 = status_kib("VmRSS"), app.rss_kib()
        callers: list[VirtualCaller] = []

        async def one_call() -> None:
            caller = await bench.server.dial_in("bench", timeout=60)
            callers.append(caller)
            await caller.wait_answered(timeout=60)

        await asyncio.gather(*(one_call() for _ in range(n)))
        window = Window(bench, app)
        window.start()
        await asyncio.sleep(hold)
        stats = window.stop()
        gc.collect()
        rss1, app_rss1 = status_kib("VmRSS"), app.rss_kib()
        await _hangup_all(callers)
        await app.stop()
    return {
        "scenario": "idle",
        "n": n,
        "hold_s": hold,
        "record_calls": record,
        **stats,
        "server_kib_per_call": (rss1 - rss0) / n,
        "consumer_kib_per_call": (app_rss1 - app_rss0) / n,
    }


# -- 5a: SDK throughput ----------------------------------------------------------------------------
def _presser(
    server: RelayServer, caller: VirtualCaller, digits: str, keys: dict[str, np.ndarray]
) -> Callable[[CallEvent], None]:
    """A caller who keys the next of ``digits`` as soon as each new prompt's TTS starts (it
    watches the call's events, not its transcript: no text is made for every event)."""
    count = 0
    media = server.calls[caller.call_id].media

    def on_event(event: CallEvent) -> None:
        nonlocal count
        if isinstance(event, MediaStarted) and event.media == "tts":
            media.push_inbound(keys[digits[count % len(digits)]])
            count += 1

    return on_event


async def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    """One consumer process, ``calls`` calls, one-digit prompts back to back. The contenders
    take turns (A, B, B, A) so that a drift in machine load hits both alike."""
    calls: int = spec["calls"]
    seconds: float = spec["seconds"]
    out: dict[str, Any] = {"scenario": "throughput", "calls": calls, "seconds": seconds}
    # 50 ms tones, 30 ms gaps, never the same digit twice in a row: a caller is never what
    # limits the rate, so prompts per second are bound by CPU (the SDK's or the server's)
    digit_keys = {k: generate_dtmf(k, tone_ms=50, gap_ms=30) for k in "0123456789"}
    labels = contenders(spec, out)
    order = [*labels, *reversed(labels)] if len(labels) > 1 else labels
    counters = ("prompts", "successful", "wall", "server", "consumer", "other")
    totals = {label: dict.fromkeys(counters, 0.0) | {"late": [], "errors": []} for label in labels}
    async with Bench(record_calls=False) as bench:
        server = bench.server
        server.loader.tts.synthesize(DIGIT_PROMPT)
        for i, label in enumerate(order):
            context = f"tp-{label}-{i}"
            async with turn(bench, label, spec, "loop", context) as app:
                callers: list[VirtualCaller] = []
                for c in range(calls):
                    caller = await server.dial_in(context, timeout=30)
                    k = c % 10
                    digits = "1234567890"[k:] + "1234567890"[:k]
                    caller.on_event(_presser(server, caller, digits, digit_keys))
                    callers.append(caller)
                await asyncio.sleep(1.0)  # warm up
                window = Window(bench, app)
                first = await app.command("report", "summary")
                window.start()
                await asyncio.sleep(seconds / order.count(label))
                last = await app.command("report", "summary")
                stats = window.stop()
                await _hangup_all(callers)
            await asyncio.sleep(0.5)
            t = totals[label]
            for key in ("prompts", "successful"):
                t[key] += last[key] - first[key]
            t["wall"] += last["t"] - first["t"]
            for key in ("server", "consumer", "other"):
                t[key] += stats[f"{key}_cpu_pct"] / 100 * stats["wall_s"]
            t["late"].append(stats["late_p99_ms"])
            t["errors"] += last["errors"]
    for label, t in totals.items():
        n, wall = int(t["prompts"]), t["wall"]
        out[label] = {
            "prompts": n,
            "successful": int(t["successful"]),
            "prompts_per_s": n / wall if wall else 0.0,
            "server_cpu_pct": 100 * t["server"] / wall,
            "consumer_cpu_pct": 100 * t["consumer"] / wall,
            "other_cpu_pct": 100 * t["other"] / wall,
            "server_cpu_ms_per_prompt": 1000 * t["server"] / n if n else None,
            "consumer_cpu_ms_per_prompt": 1000 * t["consumer"] / n if n else None,
            "late_p99_ms": max((x for x in t["late"] if x is not None), default=None),
            "errors": t["errors"][:10],
        }
    return out


async def engine_only(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import engine

    return engine.run(spec)


SCENARIOS = {
    "engine": engine_only,
    "concurrency": concurrency,
    "latency": latency,
    "rtt": rtt,
    "idle": idle,
    "throughput": throughput,
}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = json.loads(sys.argv[1])
    profile = spec.get("profile")
    run = SCENARIOS[spec["scenario"]]
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        result = asyncio.run(run(spec))
        profiler.disable()
        profiler.dump_stats(profile)
    else:
        result = asyncio.run(run(spec))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
