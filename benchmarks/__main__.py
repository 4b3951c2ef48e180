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
import time
from pathlib import Path
from typing import Any

from benchmarks import OPENBLAS_SETTING
from benchmarks._common import (
    ensure_peer_python,
    loadavg,
    machine,
    peer_python,
    top_processes,
    venv_dir,
)

ROOT = Path(__file__).resolve().parent.parent
LATENESS_GOAL_MS = 20.0
SPEECH_DELAY_GOAL_MS = 1000.0

FULL = {
    "engine": {"sizes": [100, 1000, 2000], "ticks": 250, "profile_n": 1000},
    "media": [10, 100, 500, 1000, 2000],
    "speech": [10, 25, 50, 75, 100],
    "latency": {"samples": 100, "batch": 10},
    "rtt": {"count": 2000},
    "throughput": {"calls": 400, "seconds": 10.0},
    "idle": {"n": 1000, "hold": 3.0},
}
QUICK = {
    "engine": {"sizes": [100], "ticks": 50},
    "media": [10],
    "speech": [5],
    "latency": {"samples": 10, "batch": 5},
    "rtt": {"count": 200},
    "throughput": {"calls": 20, "seconds": 2.0},
    "idle": {"n": 50, "hold": 1.0},
}
SECTIONS = ("engine", "media", "speech", "latency", "rtt", "throughput", "idle")


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
    headers = [
        "N",
        "server CPU",
        "consumer CPU",
        "other procs",
        "peak RSS server",
        "peak RSS consumer",
        "lateness p50",
        "p99",
        "max",
        ">20 ms late",
        "correct",
        "result delay p50 / p99" if speech else "key→SDK p50 / p99",
        "holds",
    ]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([str(r.get("n", "?")), f"failed: {r['error']}"] + [""] * 11)
            continue
        rows.append(
            [
                str(r["n"]),
                f(r["server_cpu_pct"], 0, " %"),
                f(r["consumer_cpu_pct"], 0, " %"),
                f(r["other_cpu_pct"], 0, " %"),
                f(r["peak_rss_mib"], 0, " MiB"),
                f(r["consumer_peak_rss_mib"], 0, " MiB"),
                f(r["late_p50_ms"], 1, " ms"),
                f(r["late_p99_ms"], 1, " ms"),
                f(r["late_max_ms"], 1, " ms"),
                f"{r['late_frames']}/{r['ticks']}",
                f"{r['correct']}/{r['n']}",
                f"{f(r['lat_p50_ms'], 0)} / {f(r['lat_p99_ms'], 0)} ms",
                "yes" if (holds_speech(r) if speech else holds_media(r)) else "no",
            ]
        )
    return table(headers, rows)


def largest(results: list[dict[str, Any]], ok: Any) -> int | None:
    good = [r["n"] for r in results if ok(r)]
    return max(good) if good else None


# -- the report ----------------------------------------------------------------------------------
def report(results: dict[str, Any], args: argparse.Namespace, info: dict[str, Any]) -> str:
    out: list[str] = []
    mode = "quick" if args.quick else "full"
    out.append(f"# relaykit benchmarks ({mode}) — {info['date']}")
    out.append("")
    out.append(
        f"Command: `{info['command']}`"
        + (f" (experiment: {args.experiment})" if args.experiment else "")
    )
    m = info["machine"]
    out.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}, numpy {m['numpy']}; {OPENBLAS_SETTING} set by "
        f"the benchmark for every process (OPENBLAS_CORETYPE={m['openblas_coretype'] or 'unset'})."
    )
    la = info["load_before"]
    busy = ", ".join(info["busy_before"]) or "none above 1 %"
    out.append(
        f"Load before the run: loadavg {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; busiest other "
        f"processes: {busy}. 'other procs' in a row is the CPU that other processes used "
        "during that row (100 % = one core)."
    )
    out.append(f"Code: {info['code']}.")
    out.append(f"Total wall time: {info['elapsed_s']:.0f} s.")

    if "engine" in results:
        out += ["", "## Media engine alone (CPU time of one thread; no sockets, no events)", ""]
        out.append(
            "Every call: a TTS prompt playing, the caller's line carrying audio (in the DTMF batch "
            "every tick), no keys. The numpy sketch does the physical minimum for the same calls: "
            "slice each inbound frame, stack, the same batch DTMF detector, slice each outbound "
            "frame. An idle call is answered with nothing playing and a silent line."
        )
        out.append("")
        r = results["engine"]
        if "error" in r:
            out.append(f"failed: {r['error']}")
        else:
            rows = [
                [
                    str(row["n"]),
                    f(row["engine_ms"], 2, " ms"),
                    f(row["engine_core_pct"], 0, " %"),
                    f(row["engine_us_per_call"], 1, " µs"),
                    f(row["sketch_ms"], 2, " ms"),
                    f(row["sketch_core_pct"], 0, " %"),
                    f(row["idle_us_per_call"], 2, " µs"),
                ]
                for row in r["rows"]
            ]
            out.append(
                table(
                    [
                        "calls",
                        "engine per tick",
                        "of one core",
                        "per call",
                        "numpy sketch per tick",
                        "of one core",
                        "idle call",
                    ],
                    rows,
                )
            )
            for row in r["rows"]:
                if row.get("profile"):
                    out += [
                        "",
                        f"Where the engine's time goes at {row['n']} calls (cProfile own time, "
                        "rescaled to the unprofiled tick):",
                        "",
                    ]
                    out.append(
                        table(
                            ["function", "µs per call per tick", "share"],
                            [[p[0], f(p[1], 2), f(p[2], 1, " %")] for p in row["profile"]],
                        )
                    )

    if "media" in results:
        rs = results["media"]
        out += ["", "## Media concurrency: digit prompts", ""]
        out.append(
            "N calls arrive at 200/s; each IVR (relaykit SDK, separate process) answers and runs "
            "`prompt_tts('digits', PIN prompt, digits_max=10, digits_terminators='#')`; once all "
            "are up each caller keys a random 4-digit PIN and '#' as DTMF audio at a random moment "
            "in a 2 s window. record_calls=False. Lateness: how late each 20 ms tick ran, from the "
            "first call to the last result. key→SDK: '#' tone onset → the SDK has the result."
        )
        out.append("")
        out.append(concurrency_table(rs, speech=False))
        best = largest(rs, holds_media)
        out += [
            "",
            f"Largest N that holds (p99 lateness ≤ {LATENESS_GOAL_MS:g} ms and every prompt "
            f"correct): **{best if best is not None else 'none'}** (floor 1000, target 2000).",
        ]

    if "speech" in results:
        rs = results["speech"]
        out += ["", "## Speech concurrency: speech prompts", ""]
        out.append(
            "As above with `prompt_tts('speech', 'Say sales or support', speech_hints=[...])`; "
            "each caller says 'sales' or 'support' (espeak-ng voice) at a random moment in a 2 s "
            "window. Result delay: SDK has the result − (end of the word + the 1 s "
            "end_silence_timeout), i.e. the time spent beyond what the protocol makes it wait. "
            f"Holds: lateness p99 ≤ {LATENESS_GOAL_MS:g} ms, every word right, result delay "
            f"p99 ≤ {SPEECH_DELAY_GOAL_MS:g} ms."
        )
        out.append("")
        out.append(concurrency_table(rs, speech=True))
        best = largest(rs, holds_speech)
        out += [
            "",
            f"Largest N that holds in real time: **{best if best is not None else 'none'}** "
            "(goal ≥ 50).",
        ]

    if "latency" in results or "rtt" in results:
        out += ["", "## Latency", ""]
        rows = []
        r = results.get("latency", {})
        if "error" in r:
            out.append(f"latency failed: {r['error']}")
        elif r:
            out.append(
                f"{r['samples']} calls, {r.get('batch', '?')} at a time, record_calls=True; the "
                "caller keys a PIN and '#' 0.5 s into the TTS prompt (barge-in). Audio arrives in "
                f"real time: a frame's first sample 20 ms before its tick is due. Correct: "
                f"{r['correct']}/{r['samples']}."
            )
            out.append("")
            for label, key in (
                ("'#' tone onset → terminal collect event in the SDK", "key_sdk"),
                ("  of which audio until the detector decides (media clock)", "key_detect"),
                (
                    "  of which detection tick → event in the SDK (server + socket + SDK)",
                    "key_deliver",
                ),
                (
                    "first key detected → prompt playback stopped (barge-in, media clock)",
                    "barge_clock",
                ),
                (
                    "first tone onset → IVR audio silent (from the call recording)",
                    "barge_recording",
                ),
            ):
                p50, p95, p99 = r[key]
                rows.append([label, f(p50, 1, " ms"), f(p95, 1, " ms"), f(p99, 1, " ms")])
        r = results.get("rtt", {})
        if "error" in r:
            out.append(f"rtt failed: {r['error']}")
        elif r:
            for label, key in (("relaykit SDK", "ours"), ("signalwire 2.1.1", "peer")):
                if key in r:
                    p50, p99, count = r[key]
                    rows.append(
                        [
                            f"command round trip on loopback, {label} "
                            f"(calling.play.volume ×{count})",
                            f(p50, 3, " ms"),
                            "",
                            f(p99, 3, " ms"),
                        ]
                    )
                elif key == "peer":
                    rows.append(
                        [
                            f"command round trip, {label}: skipped ({r.get('peer_skipped')})",
                            "",
                            "",
                            "",
                        ]
                    )
        out.append(table(["measure", "p50", "p95", "p99"], rows))

    if "throughput" in results:
        r = results["throughput"]
        out += ["", "## SDK throughput vs the peer (same server, same run)", ""]
        if "error" in r:
            out.append(f"failed: {r['error']}")
        else:
            out.append(
                f"One consumer process drives {r['calls']} calls, each running one-digit "
                "`prompt_tts` after another; the caller keys a digit (50 ms tone) as each "
                f"prompt starts. {r['seconds']:g} s per SDK after a warm-up. The machine is "
                "saturated (server + consumer + other processes), so prompts/s is bound by CPU."
            )
            out.append("")
            rows = []
            for label, key in (("relaykit SDK", "ours"), ("signalwire 2.1.1", "peer")):
                t = r.get(key)
                if t is None:
                    rows.append([label, f"skipped ({r.get('peer_skipped', '?')})"] + [""] * 5)
                    continue
                per = t["consumer_cpu_ms_per_prompt"]
                rows.append(
                    [
                        label,
                        f(t["prompts_per_s"], 0),
                        f"{t['successful']}/{t['prompts']}",
                        f(t["consumer_cpu_pct"], 0, " %"),
                        f(per, 3, " ms"),
                        f(1000 / per if per else None, 0),
                        f(t["server_cpu_ms_per_prompt"], 3, " ms"),
                        f(t["server_cpu_pct"], 0, " %"),
                        f(t["other_cpu_pct"], 0, " %"),
                        f(t["late_p99_ms"], 0, " ms"),
                    ]
                )
            out.append(
                table(
                    [
                        "SDK",
                        "prompts/s",
                        "successful",
                        "consumer CPU",
                        "consumer CPU per prompt",
                        "prompts/s per consumer core",
                        "server CPU per prompt",
                        "server CPU",
                        "other procs",
                        "lateness p99",
                    ],
                    rows,
                )
            )
            if "ours" in r and "peer" in r and r["peer"]["prompts_per_s"]:
                ratio = r["ours"]["prompts_per_s"] / r["peer"]["prompts_per_s"]
                ours_ms = r["ours"]["consumer_cpu_ms_per_prompt"]
                peer_ms = r["peer"]["consumer_cpu_ms_per_prompt"]
                cpu_ratio = peer_ms / ours_ms if ours_ms and peer_ms else None
                results["throughput"]["ratio"] = ratio
                results["throughput"]["cpu_ratio"] = cpu_ratio
                out += [
                    "",
                    f"Ratio relaykit / signalwire 2.1.1: **{ratio:.2f}×** prompts per second "
                    f"(goal ≥ 1.5×); per consumer core (1 / consumer CPU per prompt): "
                    f"**{f(cpu_ratio, 2)}×**. The turns run ours, peer, peer, ours.",
                ]

    if "idle" in results:
        r = results["idle"]
        out += ["", "## Memory per idle call", ""]
        if "error" in r:
            out.append(f"failed: {r['error']}")
        else:
            out.append(
                f"{r['n']} calls answered by the relaykit consumer, nothing playing, held "
                f"{r['hold_s']:g} s; RSS growth after gc, divided by the number of calls "
                f"(record_calls={r['record_calls']}, the server's default)."
            )
            out.append("")
            out.append(
                table(
                    [
                        "calls",
                        "server per call",
                        "consumer per call",
                        "server CPU (idle calls)",
                        "lateness p99",
                    ],
                    [
                        [
                            str(r["n"]),
                            f(r["server_kib_per_call"], 1, " KiB"),
                            f(r["consumer_kib_per_call"], 1, " KiB"),
                            f(r["server_cpu_pct"], 1, " %"),
                            f(r["late_p99_ms"], 1, " ms"),
                        ]
                    ],
                )
            )

    out += ["", "## Goals", ""]
    out.append(table(["goal", "measured", "met"], goals(results)))
    return "\n".join(out)


def goals(results: dict[str, Any]) -> list[list[str]]:
    rows = []

    def row(goal: str, measured: str, met: bool | None) -> None:
        rows.append([goal, measured, "–" if met is None else ("yes" if met else "no")])

    media = results.get("media")
    if media:
        best = largest(media, holds_media)
        tried = max(r.get("n", 0) for r in media)
        for want, what in ((1000, "floor"), (2000, "target")):
            met = None if tried < want else (best is not None and best >= want)
            row(
                f"media: {want} calls, p99 lateness ≤ 20 ms, all correct ({what})",
                f"largest N that holds: {best}",
                met,
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
        row("SDK throughput ≥ 1.5× signalwire 2.1.1", f"{tp['ratio']:.2f}×", tp["ratio"] >= 1.5)
        if tp.get("cpu_ratio"):
            row(
                "  (the same per consumer core: 1 / CPU per prompt)",
                f"{tp['cpu_ratio']:.2f}×",
                tp["cpu_ratio"] >= 1.5,
            )
    elif tp:
        row(
            "SDK throughput ≥ 1.5× signalwire 2.1.1",
            f"peer skipped ({tp.get('peer_skipped', tp.get('error'))})",
            None,
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
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--sizes", help="media sizes, e.g. 10,100,500,1000,2000")
    parser.add_argument("--speech-sizes", help="speech sizes, e.g. 10,25,50,75,100")
    parser.add_argument("--experiment", help="patch in an optimisation (benchmarks/experiments.py)")
    parser.add_argument("--no-peer", action="store_true", help="skip signalwire 2.1.1")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--output", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args(argv)

    plan = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.sizes:
        plan["media"] = [int(s) for s in args.sizes.split(",")]
    if args.speech_sizes:
        plan["speech"] = [int(s) for s in args.speech_sizes.split(",")]
    sections = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

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
    if not args.no_peer and {"rtt", "throughput"} & set(sections):
        if args.quick:
            peer = peer_python() is not None
            if not peer:
                print(f"  peer skipped: no signalwire 2.1.1 venv at {venv_dir()}", file=sys.stderr)
        else:
            try:
                print(f"  preparing the signalwire 2.1.1 venv at {venv_dir()}", file=sys.stderr)
                ensure_peer_python()
                peer = True
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                print(f"  peer skipped: {exc}", file=sys.stderr)

    exp = {"experiment": args.experiment} if args.experiment else {}
    results: dict[str, Any] = {}
    for section in sections:
        if section == "engine":
            results["engine"] = run_worker({"scenario": "engine", **plan["engine"], **exp}, 600)
        elif section in ("media", "speech"):
            kind = "digits" if section == "media" else "speech"
            results[section] = []
            for n in plan[section]:
                spec = {"scenario": "concurrency", "kind": kind, "n": n, **exp}
                r = run_worker(spec, 120 + n * 0.2)
                r.setdefault("n", n)
                results[section].append(r)
        elif section == "latency":
            results["latency"] = run_worker({"scenario": "latency", **plan["latency"], **exp}, 300)
        elif section == "rtt":
            results["rtt"] = run_worker({"scenario": "rtt", **plan["rtt"], "peer": peer}, 300)
        elif section == "throughput":
            spec = {"scenario": "throughput", **plan["throughput"], "peer": peer}
            results["throughput"] = run_worker(spec, 300)
        elif section == "idle":
            results["idle"] = run_worker({"scenario": "idle", **plan["idle"]}, 300)
    info["elapsed_s"] = time.monotonic() - started

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
