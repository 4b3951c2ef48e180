"""Optimisation experiments: variants of relaykit code patched in at run time, never in ``src/``.

``python -m benchmarks --experiment NAME[,NAME]`` runs the rows with the variant patched into the
worker process (server side) or into the consumer app (SDK side), so that its effect is
measured against the unpatched baseline in the same conditions. Each variant is a proposal for
the real code; ``python -m benchmarks.experiments check`` verifies that lean-tick gives
exactly the same events and audio as the engine it replaces.

``lean-tick``     ``MediaEngine.tick`` with less Python per call: frames in a list aligned with
                 the calls instead of a dict keyed by call id, no list concatenation for empty
                 callback lists, the call clock computed inline, and a prompt's collector is
                 only ticked when it has a deadline pending (the engine ticks every prompt of
                 every call every frame, and almost all return nothing).
``asr-process``  speech recognition in a pool of worker processes instead of a thread of the
                 server's: pocketsphinx holds the GIL while it decodes (~17 ms per word), which
                 stalls the media clock; in a process it does not, and two decodes can run at once.
``tts-inline``   ``MediaLoader.load`` takes a TTS prompt that is already in the synthesiser's
                 cache inline; today every prompt's TTS goes through ``asyncio.to_thread`` (a
                 thread-pool submit, a thread wake-up and a loop wake-up) even when cached.
``ws-batch``     the connection writer drains its outbox in one go: one websockets send
                 context and one socket ``write`` for all queued events, instead of one each.
``sdk-fast``     (consumer side) ``Client`` skips ``_wait_ready``'s ``wait_for`` when already
                 connected, times requests out with one ``call_later`` instead of ``wait_for``,
                 and the JSON depth check runs only when a frame has enough brackets to be deep.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

# -- lean-tick ------------------------------------------------------------------------------------


def _lean_tick(server: Any) -> None:
    """MediaEngine.tick with less Python per call; the same events, audio and order."""
    from relaykit.media import engine as eng

    if getattr(eng.MediaEngine, "_bench_lean", False):
        return
    silence = eng._SILENCE
    frame_seconds = eng.FRAME_SECONDS
    quiet_max = eng._QUIET_FRAMES_BEFORE_IDLE
    key_detected = eng.KeyDetected

    def tick(self: Any) -> list[Any]:
        events: list[Any] = []
        callbacks: list[Callable[[], None]] = []
        calls = list(self._calls.values())
        frames: list[np.ndarray | None] = []  # aligned with calls, not a dict by call id
        det_calls: list[Any] = []
        det_frames: list[np.ndarray] = []
        for call in calls:
            frame, done = call._read_inbound()
            if done:
                callbacks += done
            frames.append(frame)
            if frame is not None:
                call.quiet_frames = 0
            elif call.quiet_frames < quiet_max:
                call.quiet_frames += 1
            else:
                continue
            det_calls.append(call)
            det_frames.append(silence if frame is None else frame)

        if det_calls:
            channels = np.fromiter((c.dtmf_channel for c in det_calls), dtype=np.int64)
            for channel, key in self._dtmf.process(channels, np.stack(det_frames)):
                call = self._by_channel.get(channel)
                if call is None:
                    continue
                now = self.call_time(call)
                call.keys.append((now, key))
                events.append(key_detected(call.call_id, key, now))
                for control_id, prompt in list(call.prompts.items()):
                    events += self._collect_events(
                        call, control_id, prompt.collector.digit(key, now), now
                    )
                    prompt.speech = []

        frame_no = self.frame
        for call, frame in zip(calls, frames, strict=True):
            if not call.prompts:
                continue
            now = (frame_no - call.start_frame) * frame_seconds
            for control_id, prompt in list(call.prompts.items()):
                if prompt.vad is not None:
                    events += self._listen(call, control_id, prompt, frame, now)
                c = prompt.collector
                # Collector.tick can only act on a pending deadline or queued output; real code
                # would ask the collector for its next deadline instead of reading privates.
                if c._digit_deadline is None and c._initial_deadline is None and not c._out:
                    continue
                outputs = c.tick(now)
                if outputs:
                    events += self._collect_events(call, control_id, outputs, now)

        for call, frame in zip(calls, frames, strict=True):
            out = self._render(call, events)
            if call.on_outbound is not None and out is not None:
                call.on_outbound(out)
            if call.record:
                call._rec_in.append(silence if frame is None else frame)
                call._rec_out.append(silence if out is None else out)

        self.frame += 1
        for callback in callbacks:
            callback()
        return events

    eng.MediaEngine.tick = tick  # type: ignore[method-assign]
    eng.MediaEngine._bench_lean = True  # type: ignore[attr-defined]


# -- asr-process ----------------------------------------------------------------------------------
_POOL_RECOGNIZER: Any = None


def _pool_init() -> None:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    global _POOL_RECOGNIZER
    from relaykit.media.asr import PocketsphinxRecognizer

    _POOL_RECOGNIZER = PocketsphinxRecognizer()
    _POOL_RECOGNIZER.warm_up()


def _pool_decode(language: str, hints: tuple[str, ...], audio: np.ndarray, final: bool) -> Any:
    utterance = _POOL_RECOGNIZER.open(language=language, hints=hints)
    try:
        utterance.feed(audio)
        return utterance.finish() if final else utterance.partial()
    finally:
        utterance.close()


class _ProcessUtterance:
    def __init__(self, pool: Any, language: str, hints: tuple[str, ...]) -> None:
        self._pool, self._language, self._hints = pool, language, hints
        self._audio: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> None:
        self._audio.append(np.asarray(samples, dtype=np.int16))

    def _run(self, final: bool) -> Any:
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
        future = self._pool.submit(_pool_decode, self._language, self._hints, audio, final)
        return future.result()  # this worker thread waits without the GIL

    def partial(self) -> str:
        return self._run(False)

    def finish(self) -> Any:
        return self._run(True)

    def close(self) -> None:
        self._audio = []


class ProcessRecognizer:
    """The server's recogniser interface, decoding in ``workers`` processes."""

    def __init__(self, inner: Any, workers: int = 2) -> None:
        import concurrent.futures
        import multiprocessing

        self.languages = inner.languages
        self._inner = inner
        context = multiprocessing.get_context("forkserver")
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_pool_init
        )
        for f in [self._pool.submit(os.getpid) for _ in range(workers)]:
            f.result()  # start (and warm) the workers before the clock runs

    def open(self, *, language: str = "en-US", hints: Any = ()) -> _ProcessUtterance:
        self._inner.grammar(tuple(hints))  # validates the hints like the real one, cheaply
        return _ProcessUtterance(self._pool, language, tuple(hints))

    def warm_up(self) -> None:
        self._inner.warm_up()  # grammars are still compiled here (dictionary look-ups)


def _asr_process(server: Any) -> None:
    if server is not None:
        server.recognizer = ProcessRecognizer(server.recognizer)


# -- tts-inline and ws-batch (server side, per prompt and per event) -------------------------------
def _tts_inline(server: Any) -> None:
    """MediaLoader.load takes a cached TTS prompt inline instead of a worker-thread round trip."""
    from relaykit.errors import MediaError
    from relaykit.media import sources
    from relaykit.protocol.calling import AudioMedia, RingtoneMedia, SilenceMedia, TtsMedia
    from relaykit.server import media_loader

    log = media_loader.log

    def cached(tts: Any, m: Any) -> np.ndarray | None:
        lookup = getattr(tts, "_lookup", None)
        if lookup is None or not isinstance(m.text, str) or not m.text.strip():
            return None
        try:
            voice = tts.voice_for(m.language, m.gender)
        except Exception:
            return None
        text = m.text.replace("\0", " ")
        return lookup((text, voice, text.lstrip().startswith("<speak")))

    async def load(self: Any, items: Any, media: Any) -> None:
        for item, m in zip(items, media, strict=True):
            try:
                if isinstance(m, SilenceMedia):
                    samples = sources.silence(m.duration)
                elif isinstance(m, RingtoneMedia):
                    samples = sources.ringtone(m.name.lower(), m.duration)
                elif isinstance(m, TtsMedia):
                    samples = cached(self.tts, m)
                    if samples is None:
                        samples = await asyncio.to_thread(
                            self.tts.synthesize, m.text, language=m.language, gender=m.gender
                        )
                elif isinstance(m, AudioMedia):
                    samples = await asyncio.to_thread(
                        sources.load_audio, m.url, timeout=self.fetch_timeout
                    )
                else:
                    raise MediaError(f"unsupported media {m!r}")
            except MediaError as exc:
                item.error = str(exc)
            except Exception as exc:
                log.exception("! media loading failed")
                item.error = f"media could not be loaded ({type(exc).__name__})"
            else:
                item.samples = np.asarray(samples, dtype=np.int16)

    media_loader.MediaLoader.load = load  # type: ignore[method-assign]


def _ws_batch(server: Any) -> None:
    """The connection's writer sends every queued event in one go: one websockets send context
    and one socket write for the batch, instead of both per event."""
    from websockets.asyncio.server import ServerConnection

    from relaykit.server import connection as conn

    async def write(self: Any) -> None:
        outbox, ws = self._outbox, self.ws
        while True:
            item = await outbox.get()
            batch: list[str] = []
            while item is not None:
                batch.append(item)
                if outbox.empty() or len(batch) >= 512:
                    break
                item = outbox.get_nowait()
            if batch:
                try:
                    async with ws.send_context():
                        for text in batch:
                            ws.protocol.send_text(text.encode())
                except Exception:
                    return
            if item is None:
                return

    orig_send_data = ServerConnection.send_data

    def send_data(self: Any) -> None:
        data = self.protocol.data_to_send()
        if data and all(data):
            self.transport.write(b"".join(data))
        elif data:
            self.protocol.writes.extend(data)  # the rare EOF case: let websockets handle it
            orig_send_data(self)

    conn.Connection._write = write  # type: ignore[method-assign]
    ServerConnection.send_data = send_data  # type: ignore[method-assign]


# -- sdk-fast (applied inside the consumer app) ---------------------------------------------------
def sdk_fast() -> None:
    from relaykit.client import client as cl
    from relaykit.errors import RelayConnectionError, RelayTimeoutError
    from relaykit.protocol import jsonrpc

    orig_wait_ready = cl.Client._wait_ready

    async def wait_ready(self: Any, timeout: float | None) -> None:
        if self._ready.is_set():
            return
        await orig_wait_ready(self, timeout)

    async def request(
        self: Any,
        method: str,
        params: dict[str, Any],
        *,
        timeout: float | None = None,
        ready: bool = True,
    ) -> dict[str, Any]:
        if ready and not self._ready.is_set():
            await orig_wait_ready(self, timeout)
        ws = self._ws
        if ws is None:
            raise RelayConnectionError("not connected to the RELAY server")
        request_id, text = self._peer.request(method, params)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._replies[request_id] = future
        limit = timeout or self.request_timeout

        def expire() -> None:
            if not future.done():
                future.set_exception(RelayTimeoutError(f"{method} got no reply within {limit:g}s"))

        timer = loop.call_later(limit, expire)
        try:
            await ws.send(text)
            return await future
        except cl.websockets.exceptions.ConnectionClosed as exc:
            raise RelayConnectionError(f"connection closed: {exc}") from None
        finally:
            timer.cancel()
            self._replies.pop(request_id, None)
            self._peer.forget(request_id)

    orig_depth_ok = jsonrpc._depth_ok
    orig_parse = jsonrpc.parse_message
    max_depth = jsonrpc.MAX_DEPTH
    shallow = [False]

    def depth_ok(value: Any, limit: int) -> bool:
        return shallow[0] or orig_depth_ok(value, limit)

    def parse_message(data: str | bytes) -> Any:
        # nesting deeper than MAX_DEPTH needs more than MAX_DEPTH opening brackets
        shallow[0] = isinstance(data, str) and data.count("{") + data.count("[") <= max_depth
        try:
            return orig_parse(data)
        finally:
            shallow[0] = False

    cl.Client._wait_ready = wait_ready  # type: ignore[method-assign]
    cl.Client.request = request  # type: ignore[method-assign]
    jsonrpc._depth_ok = depth_ok
    from relaykit.protocol import session

    session.parse_message = parse_message  # type: ignore[assignment]


def _sdk_fast(server: Any) -> None:
    os.environ["BENCH_EXPERIMENT_SDK"] = "sdk-fast"  # the consumer apps read this


EXPERIMENTS: dict[str, Callable[[Any], None]] = {
    "lean-tick": _lean_tick,
    "asr-process": _asr_process,
    "sdk-fast": _sdk_fast,
    "tts-inline": _tts_inline,
    "ws-batch": _ws_batch,
}


def apply(name: str, server: Any) -> None:
    """Patch the named variants in (comma-separated); ``server`` is None outside a server run."""
    for part in name.split(","):
        if part not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {part!r}; known: {', '.join(EXPERIMENTS)}")
        EXPERIMENTS[part](server)


# -- the equivalence check for lean-tick ----------------------------------------------------------
def _scripted_run(seed: int) -> tuple[list[str], list[bytes]]:
    """A deterministic engine session: prompts, plays, keys, timeouts, hang-ups; what came out."""
    import hashlib
    import random

    from relaykit.media.dtmf import generate_dtmf
    from relaykit.media.engine import MediaEngine
    from relaykit.media.playback import MediaItem
    from relaykit.media.vad import VoiceActivityDetector
    from relaykit.protocol.calling import Collect

    rng = random.Random(seed)
    engine = MediaEngine(vad_factory=VoiceActivityDetector)
    t = np.arange(16000 * 3) / 16000
    tone = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    tone.flags.writeable = False
    speechy = (8000 * np.sin(2 * np.pi * 180 * t[:12000]) * np.sin(np.pi * t[:12000])).astype(
        np.int16
    )
    outs: dict[str, list[bytes]] = {}
    log: list[str] = []
    calls = []
    for i in range(12):
        call = engine.add_call(f"c{i}", record=(i % 3 == 0))
        outs[call.call_id] = []
        call.on_outbound = lambda out, cid=call.call_id: outs[cid].append(out.tobytes())
        calls.append(call)
    collects = [
        Collect.parse({"digits": {"max": 4, "terminators": "#"}, "initial_timeout": 1.0}),
        Collect.parse({"digits": {"max": 2, "digit_timeout": 0.3}}),
        Collect.parse({"speech": {"end_silence_timeout": 0.4}, "initial_timeout": 2.0}),
    ]
    for step in range(400):
        for call in calls:
            r = rng.random()
            if r < 0.01 and not call.prompts:
                items = [MediaItem("tts", "x", samples=tone[: rng.randrange(100, 40000)])]
                engine.start_prompt(
                    call.call_id, f"p{step}", items, rng.choice(collects), rng.choice((0.0, -6.0))
                )
            elif r < 0.015 and not call.playbacks:
                items = [MediaItem("tts", "y", samples=tone[: rng.randrange(100, 20000)])]
                engine.start_play(call.call_id, f"q{step}", items)
            elif r < 0.025 and not call.inbound:
                keys = "".join(rng.choice("0123456789#") for _ in range(rng.randrange(1, 5)))
                call.push_inbound(np.zeros(rng.randrange(0, 700), np.int16))
                call.push_inbound(generate_dtmf(keys))
            elif r < 0.028 and not call.inbound:
                call.push_inbound(speechy)
            elif r < 0.029 and call.prompts:
                log += [repr(e) for e in engine.stop(call.call_id, next(iter(call.prompts)))]
        for e in engine.tick():
            log.append(repr(e) if not hasattr(e, "audio") else f"speech {len(e.audio)}")
    for call in calls:
        log += [repr(e) for e in engine.end_call(call.call_id)]
        if call.record:
            rec = call.recording()
            log.append(f"{call.call_id} rec {hashlib.sha256(rec.tobytes()).hexdigest()}")
    digest = [hashlib.sha256(b"".join(v)).digest() for v in outs.values()]
    return log, digest


def check() -> bool:
    """Run the scripted sessions with the real engine, then with lean-tick; compare."""
    baseline = [_scripted_run(seed) for seed in range(3)]
    _lean_tick(None)
    patched = [_scripted_run(seed) for seed in range(3)]
    same = baseline == patched
    events = sum(len(log) for log, _ in baseline)
    print(
        f"lean-tick vs the engine: {events} events and every call's audio "
        f"{'identical' if same else 'DIFFERENT'}"
    )
    return same


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        sys.exit(0 if check() else 1)
    print(__doc__)
