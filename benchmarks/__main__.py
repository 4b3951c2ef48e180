"""``python -m benchmarks [--quick]``: run every benchmark and print the figures as tables.

Each row runs in a fresh worker process (``benchmarks/worker.py``: the server and the virtual
callers) with the IVR consumer in a process of its own (``benchmarks/apps/``), so that a row's
CPU and peak memory are that row's alone and the server is never measured together with the
client. ``--quick`` is the small version CI runs (under a minute); the full run takes several
minutes and builds the signalwire 2.1.1 venv for the peer comparison if it is missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import OPENBLAS_SETTING, experiments
from benchmarks._common import (
    ensure_peer_python,
    loadavg,
    machine,
    peer_python,
    top_processes,
)
from tests.compat.v2 import VenvError, venv_dir

ROOT = Path(__file__).resolve().parent.parent
CURVE_PNG = Path(__file__).resolve().parent / "scaling.png"
LATENESS_GOAL_MS = 20.0
SPEECH_DELAY_GOAL_MS = 1000.0
MEDIA_TARGET = 4000  # calls that must hold in every run
LOADED_TARGET = 2000  # calls that must hold beside LOADED_SHARE of a core of other load
LOADED_SHARE = 0.2
ENGINE_RATIO_GOAL = 2.0  # engine cost within this factor of the floor, at MEDIA_TARGET calls
SDK_RATIO_GOAL = 1.5
PROMPT_CYCLE_S = 0.08  # throughput row: a call runs a one-digit prompt every 4 ticks at most
RTT_P99_GOAL_MS = 1.0
SIP_TARGET = 1000
DEMO_GOAL_S = 1.0

FULL = {
    "engine": {"sizes": [250, 1000, 2000, 4000, 8000], "ticks": 250, "profile_n": 4000},
    "media": [250, 1000, 2000, 4000, 8000],
    "media_repeat": 5,  # runs of the MEDIA_TARGET row
    "loaded": {"n": LOADED_TARGET, "load": LOADED_SHARE, "runs": 2},
    "speech": [10, 25, 50, 75, 100],
    "latency": {"samples": 100, "batch": 10},
    "rtt": {"count": 2000},
    "throughput": {"calls": 1000, "seconds": 10.0},
    "idle": {"n": 1000, "hold": 3.0},
    "sip": {"calls": [SIP_TARGET // 2, SIP_TARGET], "hold": 10.0},
    "demo": {"runs": 3},
}
QUICK = {
    "engine": {"sizes": [100], "ticks": 50},
    "media": [10],
    "media_repeat": 1,
    "loaded": {"n": 10, "load": LOADED_SHARE, "runs": 1},
    "speech": [5],
    "latency": {"samples": 10, "batch": 5},
    "rtt": {"count": 200},
    "throughput": {"calls": 20, "seconds": 2.0},
    "idle": {"n": 50, "hold": 1.0},
    "sip": {"calls": [10], "hold": 3.0},
    "demo": {"runs": 1},
}
# sip needs Debian's sip-tester (SIPp): run it by name, with --only sip
SECTIONS = (
    "engine",
    "media",
    "loaded",
    "speech",
    "latency",
    "rtt",
    "throughput",
    "idle",
    "demo",
    "sip",
)
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "sip")


# -- running workers ------------------------------------------------------------------------------
def run_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    label = " ".join(f"{k}={v}" for k, v in spec.items() if k not in ("scenario", "profile"))
    print(f"  running {spec['scenario']} {label}", file=sys.stderr, flush=True)
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g}s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            result["elapsed_s"] = time.monotonic() - start
            return result
    return {"error": f"worker exited {done.returncode} without a result"}


def run_sip(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``benchmarks/sip_bench.py`` in its own process (it holds the server and SIPp's calls)."""
    calls = [str(n) for n in spec["calls"]]
    label = f"calls={','.join(calls)} hold={spec['hold']:g}"
    print(f"  running sip {label}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sip.json"
        try:
            subprocess.run(
                [sys.executable, "benchmarks/sip_bench.py", "--calls", *calls,
                 "--hold", str(spec["hold"]), "--json", str(out)],
                cwd=ROOT, timeout=timeout, stdout=sys.stderr,
                env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:g}s"}
        if not out.exists():
            return {"error": "sip_bench.py wrote no figures (is sipp installed?)"}
        return {"hold": spec["hold"], "rows": json.loads(out.read_text())}


def run_demo(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``relaykit demo`` as a user starts it, timed from the process start to its lines."""
    script = Path(sys.executable).with_name("relaykit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "relaykit"]
    runs = []
    for run in range(1, spec["runs"] + 1):
        print(f"  running demo {run}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            proc = subprocess.Popen(
                [*command, "demo", "--out", tmp],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "COLUMNS": "200"},
            )
            marks: dict[str, float] = {}
            assert proc.stdout is not None
            for line in proc.stdout:
                now = time.monotonic() - start
                marks.setdefault("banner_s", now)
                if " ivr " in f" {line} " and "plays" in line:
                    marks.setdefault("first_audio_s", now)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                return {"error": f"the demo ran over {timeout:g}s"}
            if proc.returncode or "first_audio_s" not in marks:
                return {"error": f"the demo exited {proc.returncode} without playing a prompt"}
            runs.append({"run": run, **marks, "total_s": time.monotonic() - start})
    return {"runs": runs}


# -- formatting -----------------------------------------------------------------------------------
def f(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, rule, *body])


Column = tuple[str, Callable[[dict[str, Any]], str]]


def col(header: str, key: str, digits: int = 1, unit: str = "") -> Column:
    """A table column showing ``record[key]`` formatted by :func:`f`."""
    return header, lambda r: f(r.get(key), digits, unit)


def records_table(columns: list[Column], records: list[dict[str, Any]]) -> str:
    return table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in records])


def holds_media(r: dict[str, Any]) -> bool:
    return (
        "error" not in r
        and r["late_p99_ms"] is not None
        and r["late_p99_ms"] <= LATENESS_GOAL_MS
        and r["correct"] == r["n"]
    )


def holds_speech(r: dict[str, Any]) -> bool:
    return (
        holds_media(r) and r["lat_p99_ms"] is not None and r["lat_p99_ms"] <= SPEECH_DELAY_GOAL_MS
    )


def concurrency_table(results: list[dict[str, Any]], speech: bool) -> str:
    holds = holds_speech if speech else holds_media
    columns = [
        ("N", lambda r: str(r.get("n", "?"))),
        col("server CPU", "server_cpu_pct", 0, " %"),
        col("consumer CPU", "consumer_cpu_pct", 0, " %"),
        col("other procs", "other_cpu_pct", 0, " %"),
        col("peak RSS server", "peak_rss_mib", 0, " MiB"),
        col("peak RSS consumer", "consumer_peak_rss_mib", 0, " MiB"),
        col("lateness p50", "late_p50_ms", 1, " ms"),
        col("p99", "late_p99_ms", 1, " ms"),
        col("max", "late_max_ms", 1, " ms"),
        (">20 ms late", lambda r: f"{r['late_frames']}/{r['ticks']}"),
        ("tick busy mean / p99", lambda r: f"{f(r['busy_mean_ms'])} / {f(r['busy_p99_ms'])} ms"),
        ("correct", lambda r: f"{r['correct']}/{r['n']}"),
        (
            "result delay p50 / p99" if speech else "key→SDK p50 / p99",
            lambda r: f"{f(r['lat_p50_ms'], 0)} / {f(r['lat_p99_ms'], 0)} ms",
        ),
        ("holds", lambda r: "yes" if holds(r) else "no"),
    ]
    blank = [""] * (len(columns) - 2)
    rows = [
        [str(r.get("n", "?")), f"failed: {r['error']}", *blank]
        if "error" in r
        else [cell(r) for _, cell in columns]
        for r in results
    ]
    return table([h for h, _ in columns], rows)


def largest(results: list[dict[str, Any]], ok: Any) -> int | None:
    good = [r["n"] for r in results if ok(r)]
    return max(good) if good else None


# -- the report ----------------------------------------------------------------------------------
def sdk_label(key: str, experiment: str | None) -> str:
    return {
        "ours": "relaykit SDK",
        "exp": f"relaykit SDK + {experiment}",
        "peer": "signalwire 2.1.1",
    }[key]


def engine_section(r: dict[str, Any]) -> list[str]:
    out = ["", "## Media engine alone (CPU time of one thread; no sockets, no events)", ""]
    out.append(
        "Every call: a TTS prompt playing, the caller's line carrying audio (in the DTMF batch "
        "every tick), no keys. *Silent* line: digital silence, as virtual callers send between "
        "keys; *noisy* line: white noise at -60 dBFS, so the DTMF detector analyses every "
        "frame. The floor is a vectorised sketch of the physical minimum for the same calls "
        "(every offset in numpy arrays, all frames gathered at once, the same batch DTMF "
        "detector); engine and floor are timed in alternation in the same run. An idle call is "
        "answered with nothing playing and a silent line."
    )
    out.append("")
    if "error" in r:
        return [*out, f"failed: {r['error']}"]

    columns: list[Column] = [
        ("calls", lambda row: str(row["n"])),
        ("silent: engine per tick", lambda row: f(row["silent"]["engine_ms"], 2, " ms")),
        ("per call", lambda row: f(row["silent"]["engine_us_per_call"], 2, " µs")),
        ("floor per call", lambda row: f(row["silent"]["floor_us_per_call"], 2, " µs")),
        ("engine / floor", lambda row: f(row["silent"]["ratio"], 2, "×")),
        ("noisy: engine per tick", lambda row: f(row["noisy"]["engine_ms"], 2, " ms")),
        ("per call", lambda row: f(row["noisy"]["engine_us_per_call"], 2, " µs")),
        ("floor per call", lambda row: f(row["noisy"]["floor_us_per_call"], 2, " µs")),
        ("engine / floor", lambda row: f(row["noisy"]["ratio"], 2, "×")),
        col("idle call", "idle_us_per_call", 3, " µs"),
    ]
    out.append(records_table(columns, r["rows"]))
    for row in r["rows"]:
        if row.get("profile"):
            out += [
                "",
                f"Where the engine's time goes at {row['n']} calls, silent lines (cProfile own "
                "time, rescaled to the unprofiled tick):",
                "",
                table(
                    ["function", "µs per call per tick", "share"],
                    [[p[0], f(p[1], 3), f(p[2], 1, " %")] for p in row["profile"]],
                ),
            ]
    return out


def concurrency_section(rs: list[dict[str, Any]], speech: bool) -> list[str]:
    if speech:
        out = ["", "## Speech concurrency: speech prompts", ""]
        out.append(
            "As above with `prompt_tts('speech', 'Say sales or support', speech_hints=[...])`; "
            "each caller says 'sales' or 'support' (espeak-ng voice) at a random moment in a 2 s "
            "window. The speech decoding processes are started and warmed before the run. Result "
            "delay: SDK has the result − (end of the word + the 1 s end_silence_timeout), i.e. "
            "the time spent beyond what the protocol makes it wait. Holds: lateness p99 ≤ "
            f"{LATENESS_GOAL_MS:g} ms, every word right, result delay p99 ≤ "
            f"{SPEECH_DELAY_GOAL_MS:g} ms. Server CPU includes the decoding processes."
        )
        best = largest(rs, holds_speech)
        verdict = f"Largest N that holds in real time: **{best}** (goal ≥ 50)."
    else:
        out = ["", "## Media concurrency: digit prompts", ""]
        out.append(
            "N calls arrive at 200/s; each IVR (relaykit SDK, separate process) answers and runs "
            "`prompt_tts('digits', PIN prompt, digits_max=10, digits_terminators='#')`; once all "
            "are up each caller keys a random 4-digit PIN and '#' as DTMF audio at a random moment "
            "in a 2 s window. record_calls=False. Lateness: how late each 20 ms tick ran, from the "
            "first call to the last result. key→SDK: '#' tone onset → the SDK has the result."
        )
        best = largest(rs, holds_media)
        verdict = (
            f"Largest N that holds (p99 lateness ≤ {LATENESS_GOAL_MS:g} ms and every prompt "
            f"correct): **{best}** (target: {MEDIA_TARGET} in every run)."
        )
    return [*out, "", concurrency_table(rs, speech), "", verdict]


LATENCY_ROWS = (
    ("'#' tone onset → terminal collect event in the SDK", "key_sdk"),
    ("  of which audio until the detector decides (media clock)", "key_detect"),
    ("  of which detection tick → event in the SDK (server + socket + SDK)", "key_deliver"),
    ("first key detected → prompt playback stopped (barge-in, media clock)", "barge_clock"),
    ("first tone onset → IVR audio silent (from the call recording)", "barge_recording"),
)


def latency_section(lat: dict[str, Any], rtt: dict[str, Any], experiment: str | None) -> list[str]:
    out = ["", "## Latency", ""]
    rows = []
    if "error" in lat:
        out.append(f"latency failed: {lat['error']}")
    elif lat:
        out.append(
            f"{lat['samples']} calls, {lat['batch']} at a time, record_calls=True; the caller keys "
            "a PIN and '#' 0.5 s into the TTS prompt (barge-in). Audio arrives in real time: a "
            f"frame's first sample 20 ms before its tick is due. Correct: "
            f"{lat['correct']}/{lat['samples']}."
        )
        out.append("")
        for label, key in LATENCY_ROWS:
            rows.append([label, *(f(v, 1, " ms") for v in lat[key])])
    if "error" in rtt:
        out.append(f"rtt failed: {rtt['error']}")
    elif rtt:
        for key in ("ours", "exp", "peer"):
            label = f"command round trip on loopback, {sdk_label(key, experiment)}"
            if key in rtt:
                p50, p99, count = rtt[key]
                rows.append(
                    [
                        f"{label} (calling.play.volume ×{count})",
                        f(p50, 3, " ms"),
                        "",
                        f(p99, 3, " ms"),
                    ]
                )
            elif key == "peer":
                rows.append([f"{label}: skipped ({rtt.get('peer_skipped')})", "", "", ""])
    out.append(table(["measure", "p50", "p95", "p99"], rows))
    return out


def throughput_section(r: dict[str, Any], experiment: str | None) -> list[str]:
    out = ["", "## SDK throughput vs the peer (same server, same run)", ""]
    if "error" in r:
        return [*out, f"failed: {r['error']}"]
    out.append(
        f"One consumer process drives {r['calls']} calls, each running one-digit `prompt_tts` "
        "after another; the caller keys a digit (50 ms tone) as each prompt starts. "
        f"{r['seconds']:g} s per SDK after a warm-up, in turns A, B, B, A. A call's prompt "
        "takes at least 4 ticks (80 ms, measured with 40 calls: from the prompt's start to "
        f"its digit and the next prompt's start), so {r['calls']} calls cap the rate at "
        f"{r['calls'] / PROMPT_CYCLE_S:.0f} prompts/s; below that cap prompts/s is bound by CPU "
        "(server + consumer + other processes)."
    )
    out.append("")
    records = []
    for key in ("ours", "exp", "peer"):
        if key in r:
            per = r[key]["consumer_cpu_ms_per_prompt"]
            records.append(
                {
                    **r[key],
                    "sdk": sdk_label(key, experiment),
                    "per_core": 1000 / per if per else None,
                    "ok": f"{r[key]['successful']}/{r[key]['prompts']}",
                }
            )
        elif key == "peer":
            records.append({"sdk": f"{sdk_label(key, experiment)}: skipped ({r['peer_skipped']})"})
    columns = [
        ("SDK", lambda t: t["sdk"]),
        col("prompts/s", "prompts_per_s", 0),
        col("successful", "ok"),
        col("consumer CPU", "consumer_cpu_pct", 0, " %"),
        col("consumer CPU per prompt", "consumer_cpu_ms_per_prompt", 3, " ms"),
        col("prompts/s per consumer core", "per_core", 0),
        col("server CPU per prompt", "server_cpu_ms_per_prompt", 3, " ms"),
        col("server CPU", "server_cpu_pct", 0, " %"),
        col("other procs", "other_cpu_pct", 0, " %"),
        col("lateness p99", "late_p99_ms", 0, " ms"),
    ]
    out.append(records_table(columns, records))
    other = "exp" if "exp" in r else "peer"
    if "ours" in r and other in r and r[other]["prompts_per_s"]:
        ratio = r["ours"]["prompts_per_s"] / r[other]["prompts_per_s"]
        ours_ms = r["ours"]["consumer_cpu_ms_per_prompt"]
        other_ms = r[other]["consumer_cpu_ms_per_prompt"]
        cpu_ratio = other_ms / ours_ms if ours_ms and other_ms else None
        if other == "peer":
            r["ratio"], r["cpu_ratio"] = ratio, cpu_ratio
            out.append("")
            out.append(
                f"Ratio relaykit / signalwire 2.1.1: **{ratio:.2f}×** prompts per second "
                f"(goal ≥ 1.5×); per consumer core (1 / consumer CPU per prompt): "
                f"**{f(cpu_ratio, 2)}×**."
            )
        else:
            gain = {
                k: 100 * (1 - r["exp"][k] / r["ours"][k])
                for k in ("server_cpu_ms_per_prompt", "consumer_cpu_ms_per_prompt")
                if r["exp"][k] and r["ours"][k]
            }
            out.append("")
            out.append(
                f"{experiment} against the tree: {100 * (1 / ratio - 1):+.1f} % prompts/s, "
                f"{-gain.get('consumer_cpu_ms_per_prompt', 0):+.1f} % consumer CPU per prompt, "
                f"{-gain.get('server_cpu_ms_per_prompt', 0):+.1f} % server CPU per prompt."
            )
    return out


def idle_section(r: dict[str, Any]) -> list[str]:
    out = ["", "## Memory per idle call", ""]
    if "error" in r:
        return [*out, f"failed: {r['error']}"]
    out.append(
        f"{r['n']} calls answered by the relaykit consumer, nothing playing, held "
        f"{r['hold_s']:g} s; RSS growth after gc, divided by the number of calls "
        f"(record_calls={r['record_calls']}, the server's default)."
    )
    columns = [
        ("calls", lambda t: str(t["n"])),
        col("server per call", "server_kib_per_call", 1, " KiB"),
        col("consumer per call", "consumer_kib_per_call", 1, " KiB"),
        col("server CPU (idle calls)", "server_cpu_pct", 1, " %"),
        col("lateness p99", "late_p99_ms", 1, " ms"),
    ]
    return [*out, "", records_table(columns, [r])]


def loaded_section(rs: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Media beside other load", ""]
    share = rs[0].get("load", LOADED_SHARE) if rs else LOADED_SHARE
    out.append(
        f"The digit-prompt row with a process of the benchmark's own keeping {100 * share:g} % "
        "of one core busy throughout (in 20 ms periods), on top of whatever else the machine "
        "runs: *other procs* counts both."
    )
    return [*out, "", concurrency_table(rs, speech=False)]


def sip_section(r: dict[str, Any]) -> list[str]:
    out = ["", "## SIP: SIPp calls with G.711 RTP both ways", ""]
    if "error" in r:
        return [*out, f"failed: {r['error']}"]
    out.append(
        "`benchmarks/sip_bench.py`: SIPp places the calls (a tenth of them per second), each "
        f"held {r['hold']:g} s while the IVR's prompt plays and RTP (PCMU) flows both ways, then "
        "keys 4 2 7 # as RFC 2833 events; the IVR (our SDK, its own process) checks the digits. "
        "Server CPU is the server process's (the probe's receiving thread included)."
    )
    columns: list[Column] = [
        ("calls", lambda t: str(t["calls"])),
        ("peak up", lambda t: str(t["peak"])),
        ("SIPp ok / failed", lambda t: f"{t['sipp_ok']} / {t['sipp_failed']}"),
        ("prompts right", lambda t: f"{t['prompts_427']}/{t['calls']}"),
        ("lateness p50", lambda t: f(t["lateness_p50"], 1, " ms")),
        ("p99", lambda t: f(t["lateness_p99"], 1, " ms")),
        ("max", lambda t: f(t["lateness_max"], 1, " ms")),
        (">20 ms late", lambda t: f"{t['late_ticks']}/{t['ticks']}"),
        ("server CPU", lambda t: f(100 * t["cpu_share"], 0, " %")),
        ("SIPp CPU", lambda t: f(100 * t.get("sipp_cpu_share", 0.0), 0, " %")),
        ("other procs", lambda t: f(100 * t.get("other_cpu_share", 0.0), 0, " %")),
        ("holds", lambda t: "yes" if t["held"] else "no"),
    ]
    return [*out, "", records_table(columns, r["rows"])]


def demo_section(r: dict[str, Any]) -> list[str]:
    out = ["", "## `relaykit demo`: start to first prompt audio", ""]
    if "error" in r:
        return [*out, f"failed: {r['error']}"]
    out.append(
        "From starting the `relaykit demo` process to the line that says the IVR plays its "
        "prompt (the media clock's first frame of it), and to the end of the whole demo, "
        f"{len(r['runs'])} runs:"
    )
    columns: list[Column] = [
        ("run", lambda t: str(t["run"])),
        ("banner (imports done)", lambda t: f(t["banner_s"], 2, " s")),
        ("first prompt audio", lambda t: f(t["first_audio_s"], 2, " s")),
        ("whole demo", lambda t: f(t["total_s"], 2, " s")),
    ]
    return [*out, "", records_table(columns, r["runs"])]


def plot_curve(results: dict[str, Any], path: Path) -> Path | None:
    """µs per call per tick (engine alone) and p99 lateness (server) against calls, as a PNG."""
    engine = results.get("engine", {}).get("rows", [])
    media = [r for r in results.get("media", []) if "error" not in r and r.get("late_p99_ms")]
    if len(engine) < 2 and len(media) < 2:
        return None
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, late) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = [row["n"] for row in engine]
    for kind, color in (("silent", "C0"), ("noisy", "C2")):
        engine_us = [row[kind]["engine_us_per_call"] for row in engine]
        floor_us = [row[kind]["floor_us_per_call"] for row in engine]
        cost.plot(ns, engine_us, "o-", color=color, label=f"engine, {kind} line")
        cost.plot(ns, floor_us, "s--", color=color, alpha=0.5, label=f"floor, {kind} line")
    cost.set(xscale="log", xlabel="concurrent calls", ylabel="µs per call per 20 ms tick")
    cost.set_title("Engine alone (CPU of one thread)")
    cost.set_ylim(bottom=0)
    cost.legend(fontsize=8)
    cost.grid(alpha=0.3)
    by_n: dict[int, list[dict[str, Any]]] = {}
    for r in media:
        by_n.setdefault(r["n"], []).append(r)
    sizes = sorted(by_n)
    for n in sizes:
        late.scatter([n] * len(by_n[n]), [r["late_p99_ms"] for r in by_n[n]], color="C3", s=14)
    best = [min(r["late_p99_ms"] for r in by_n[n]) for n in sizes]
    busy = [sum(r["busy_mean_ms"] for r in by_n[n]) / len(by_n[n]) for n in sizes]
    late.plot(sizes, best, "C3-", label="p99 lateness (dots: every run; line: best)")
    late.plot(sizes, busy, "C0--", label="tick busy, mean")
    late.axhline(LATENESS_GOAL_MS, color="gray", linestyle=":", label="20 ms goal")
    late.set(xscale="log", yscale="log", xlabel="concurrent calls", ylabel="ms")
    late.set_title("Server: digit prompts")
    late.legend(fontsize=8)
    late.grid(alpha=0.3)
    for axis, ticks in ((cost, ns), (late, sizes)):
        axis.set_xticks(ticks, [str(n) for n in ticks])
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(results: dict[str, Any], args: argparse.Namespace, info: dict[str, Any]) -> str:
    mode = "quick" if args.quick else "full"
    m, la = info["machine"], info["load_before"]
    busy = ", ".join(info["busy_before"]) or "none above 1 %"
    out = [
        f"# relaykit benchmarks ({mode}) — {info['date']}",
        "",
        f"Command: `{info['command']}`"
        + (f" (experiment: {args.experiment})" if args.experiment else ""),
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}, numpy {m['numpy']}; {OPENBLAS_SETTING} set by "
        f"the benchmark for every process (OPENBLAS_CORETYPE={m['openblas_coretype'] or 'unset'}).",
        f"Load before the run: loadavg {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; busiest other "
        f"processes: {busy}. 'other procs' in a row is the CPU that other processes used "
        "during that row (100 % = one core).",
        f"Code: {info['code']}.",
        f"Total wall time: {info['elapsed_s']:.0f} s.",
    ]
    if "engine" in results:
        out += engine_section(results["engine"])
    if "media" in results:
        out += concurrency_section(results["media"], speech=False)
    if "loaded" in results:
        out += loaded_section(results["loaded"])
    if "speech" in results:
        out += concurrency_section(results["speech"], speech=True)
    if "latency" in results or "rtt" in results:
        out += latency_section(results.get("latency", {}), results.get("rtt", {}), args.experiment)
    if "throughput" in results:
        out += throughput_section(results["throughput"], args.experiment)
    if "idle" in results:
        out += idle_section(results["idle"])
    if "sip" in results:
        out += sip_section(results["sip"])
    if "demo" in results:
        out += demo_section(results["demo"])
    if info.get("curve"):
        out += ["", f"Scaling curve: `{info['curve']}`."]
    out += ["", "## Goals", "", table(["goal", "measured", "met"], goals(results))]
    return "\n".join(out)


def goals(results: dict[str, Any]) -> list[list[str]]:
    """The targets of issue 17, each with what this run measured and whether it was met."""
    rows = []

    def row(goal: str, measured: str, met: bool | None) -> None:
        rows.append([goal, measured, "–" if met is None else ("yes" if met else "no")])

    def runs(rs: list[dict[str, Any]]) -> str:
        return ", ".join(
            "failed" if "error" in r else f"{f(r['late_p99_ms'])} ms ({f(r['other_cpu_pct'], 0)} %)"
            for r in rs
        )

    media = results.get("media") or []
    target = [r for r in media if r.get("n") == MEDIA_TARGET]
    if target:
        held = sum(holds_media(r) for r in target)
        row(
            f"media: {MEDIA_TARGET} calls hold (p99 lateness ≤ {LATENESS_GOAL_MS:g} ms, every "
            "prompt right) in every run",
            f"{held} of {len(target)} runs; p99 (other procs): {runs(target)}",
            held == len(target),
        )
    if media:
        best = largest(media, holds_media)
        row("media: largest N that holds in this run", str(best), None)
    loaded = results.get("loaded") or []
    if loaded:
        held = sum(holds_media(r) for r in loaded)
        row(
            f"media: {loaded[0].get('n')} calls hold beside {100 * LOADED_SHARE:g} % of a core "
            "of other load",
            f"{held} of {len(loaded)} runs; p99 (other procs): {runs(loaded)}",
            held == len(loaded),
        )
    engine = results.get("engine", {}).get("rows", [])
    at = [r for r in engine if r["n"] == MEDIA_TARGET] or engine[-1:]
    for r in at:
        for kind in ("silent", "noisy"):
            ratio = r[kind]["ratio"]
            row(
                f"engine within {ENGINE_RATIO_GOAL:g}× of the floor at {r['n']} calls, {kind} line",
                f"{ratio:.2f}× ({r[kind]['engine_us_per_call']:.2f} vs "
                f"{r[kind]['floor_us_per_call']:.2f} µs per call per tick)",
                ratio <= ENGINE_RATIO_GOAL,
            )
    speech = results.get("speech")
    if speech:
        best = largest(speech, holds_speech)
        tried = max(r.get("n", 0) for r in speech)
        row(
            "speech: ≥ 50 concurrent in real time",
            f"largest N that holds: {best}",
            None if tried < 50 else (best or 0) >= 50,
        )
    tp = results.get("throughput", {})
    if "ratio" in tp:
        row(
            f"SDK throughput ≥ {SDK_RATIO_GOAL:g}× signalwire 2.1.1 (prompts/s)",
            f"{tp['ratio']:.2f}×",
            tp["ratio"] >= SDK_RATIO_GOAL,
        )
        if tp.get("cpu_ratio"):
            row(
                "  (the same per consumer core: 1 / CPU per prompt)",
                f"{tp['cpu_ratio']:.2f}×",
                tp["cpu_ratio"] >= SDK_RATIO_GOAL,
            )
    elif tp:
        row(
            f"SDK throughput ≥ {SDK_RATIO_GOAL:g}× signalwire 2.1.1",
            f"peer skipped ({tp.get('peer_skipped', tp.get('error'))})",
            None,
        )
    rtt = results.get("rtt", {})
    if "ours" in rtt:
        p50, p99, _count = rtt["ours"]
        row(
            f"SDK command round trip p99 ≤ {RTT_P99_GOAL_MS:g} ms on loopback",
            f"p99 {p99:.3f} ms (p50 {p50:.3f} ms)",
            p99 <= RTT_P99_GOAL_MS,
        )
    sip = results.get("sip", {})
    if sip.get("rows"):
        r = max(sip["rows"], key=lambda row: row["calls"])
        row(
            f"SIP: {SIP_TARGET} SIPp calls with G.711 RTP both ways hold real time",
            f"{r['calls']} calls: {r['sipp_ok']} ok, {r['prompts_427']} prompts right, p99 "
            f"lateness {r['lateness_p99']:.1f} ms, {r['late_ticks']}/{r['ticks']} ticks late",
            bool(r["held"]) and r["calls"] >= SIP_TARGET,
        )
    demo = results.get("demo", {})
    if demo.get("runs"):
        worst = max(run["first_audio_s"] for run in demo["runs"])
        row(
            f"`relaykit demo` start to first prompt audio ≤ {DEMO_GOAL_S:g} s",
            f"{worst:.2f} s at worst over {len(demo['runs'])} runs",
            worst <= DEMO_GOAL_S,
        )
    idle = results.get("idle", {})
    if "server_kib_per_call" in idle:
        kib = idle["server_kib_per_call"]
        row("≤ 1 MiB server memory per idle call", f"{kib:.1f} KiB", kib <= 1024)
    return rows


def code_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.split("\n")
    except OSError:
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    if not rev:
        return "unknown (not a git checkout)"
    return f"commit {rev}" + (
        f" plus uncommitted changes in {', '.join(changed)}" if changed else ", src/ clean"
    )


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute (CI)")
    parser.add_argument(
        "--only",
        help=f"comma-separated sections: {','.join(SECTIONS)} (all but sip by default)",
    )
    parser.add_argument("--sizes", help="media sizes, e.g. 250,1000,2000,4000,8000")
    parser.add_argument(
        "--repeat", type=int, help=f"runs of the {MEDIA_TARGET}-call media row (full run: 5)"
    )
    parser.add_argument("--speech-sizes", help="speech sizes, e.g. 10,25,50,75,100")
    parser.add_argument(
        "--experiment",
        help="patch in proposed optimisations (comma-separated): "
        + ", ".join([*experiments.SERVER, *experiments.SDK]),
    )
    parser.add_argument("--no-peer", action="store_true", help="skip signalwire 2.1.1")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--output", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args(argv)

    plan = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.sizes:
        plan["media"] = [int(s) for s in args.sizes.split(",")]
    if args.speech_sizes:
        plan["speech"] = [int(s) for s in args.speech_sizes.split(",")]
    if args.repeat:
        plan["media_repeat"] = args.repeat
    sections = [s for s in (args.only.split(",") if args.only else DEFAULT_SECTIONS) if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    try:
        experiments.names(args.experiment)
    except ValueError as exc:
        parser.error(str(exc))

    started = time.monotonic()
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "load_before": loadavg(),
        "busy_before": top_processes({os.getpid()}),
        "code": code_state(),
    }
    peer = False
    # an experiment's rtt and throughput rows run the tree against the variant, not the peer
    if not args.no_peer and not args.experiment and {"rtt", "throughput"} & set(sections):
        if args.quick:
            peer = peer_python() is not None
            if not peer:
                print(f"  peer skipped: no signalwire 2.1.1 venv at {venv_dir()}", file=sys.stderr)
        else:
            try:
                print(f"  preparing the signalwire 2.1.1 venv at {venv_dir()}", file=sys.stderr)
                ensure_peer_python()
                peer = True
            except (OSError, VenvError, subprocess.SubprocessError) as exc:
                print(f"  peer skipped: {exc}", file=sys.stderr)

    exp = {"experiment": args.experiment} if args.experiment else {}
    rows: dict[str, list[tuple[dict[str, Any], float]]] = {
        "engine": [({"scenario": "engine", **plan["engine"]}, 600)],
        "media": [
            ({"scenario": "concurrency", "kind": "digits", "n": n, **exp}, 120 + n * 0.2)
            for n in plan["media"]
            for _ in range(plan["media_repeat"] if n == MEDIA_TARGET else 1)
        ],
        "loaded": [
            (
                {
                    "scenario": "concurrency",
                    "kind": "digits",
                    "n": plan["loaded"]["n"],
                    "load": plan["loaded"]["load"],
                    **exp,
                },
                120 + plan["loaded"]["n"] * 0.2,
            )
            for _ in range(plan["loaded"]["runs"])
        ],
        "speech": [
            ({"scenario": "concurrency", "kind": "speech", "n": n, **exp}, 120 + n * 0.2)
            for n in plan["speech"]
        ],
        "latency": [({"scenario": "latency", **plan["latency"], **exp}, 300)],
        "rtt": [({"scenario": "rtt", **plan["rtt"], "peer": peer, **exp}, 300)],
        "throughput": [
            ({"scenario": "throughput", **plan["throughput"], "peer": peer, **exp}, 300)
        ],
        "idle": [({"scenario": "idle", **plan["idle"]}, 300)],
        "sip": [({"scenario": "sip", **plan["sip"]}, 600)],
        "demo": [({"scenario": "demo", **plan["demo"]}, 120)],
    }
    runners = {"sip": run_sip, "demo": run_demo}
    results: dict[str, Any] = {}
    for section in sections:
        done = []
        for spec, timeout in rows[section]:
            r = runners.get(section, run_worker)(spec, timeout)
            if "n" in spec:
                r.setdefault("n", spec["n"])
            done.append(r)
        results[section] = done if section in ("media", "loaded", "speech") else done[0]
    info["elapsed_s"] = time.monotonic() - started
    if not args.quick:
        curve = plot_curve(results, CURVE_PNG)
        info["curve"] = str(curve.relative_to(ROOT)) if curve else None

    text = report(results, args, info)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=1))
    failed = [
        name
        for name, r in results.items()
        for item in (r if isinstance(r, list) else [r])
        if "error" in item
    ]
    if failed:
        print(f"benchmarks failed to run: {', '.join(sorted(set(failed)))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
