"""``python -m benchmarks.speech [--quick] [--voices/--kinds/--paths …] [--json FILE]``.

Scores each engine on the test set of :mod:`benchmarks.speech.dataset` (and Debian's
``pocketsphinx-testdata`` human recordings when installed) and prints, per engine: menu
accuracy, out-of-menu rejection, digit-string accuracy, open-sentence WER, CPU ms per
utterance, and the end-of-speech → result latency of 20 concurrent decodes through the
server's worker processes; then every target with PASS or FAIL.

Engines: ``pocketsphinx`` (the grammar recogniser; without hints the default grammar, then its
open-vocabulary n-gram mode) and ``whisper`` (if ``relaykit[whisper]`` is installed; open
sentences only, as a server in ``auto`` mode sends it only prompts without hints) and ``auto``
(what a server does by default, run on the hinted items: pocketsphinx, with Whisper's second
opinion on digit answers it is unsure of when the extra is installed; its open sentences are
Whisper's). A result counts only at or above the server's default ``min_confidence``.
``--voices`` picks voices by name (e.g. a held-out subset while tuning); ``--kinds`` and
``--paths`` pick item kinds and sample paths (e.g. ``--kinds digits --paths 16k``;
``--kinds open --engines whisper``: open speech alone).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.speech import dataset
from relaykit.calls.speech import SpeechRecognition
from relaykit.media.asr import DEFAULT_MIN_CONFIDENCE, RecognitionResult
from relaykit.media.engines import SpeechConfig, SpeechEngines
from relaykit.media.whisper import normalize_text, whisper_available

TARGETS = {
    "menu": 95.0,  # % right, hinted menu words
    "reject": 80.0,  # % of out-of-menu words rejected
    "digits_16k": 90.0,  # % right, digit strings at 16 kHz
    "wer_synthetic": 25.0,  # % WER, open sentences, synthetic voices
    "wer_human": 10.0,  # % WER, pocketsphinx-testdata recordings
    "latency_ms": 1000.0,  # p95 end-of-speech → result at 20 concurrent decodes
}
CONCURRENT = 20


@dataclass
class Scored:
    item: dataset.Item
    text: str | None  # accepted result (None: no match)
    raw_text: str | None  # before the min_confidence threshold
    confidence: float
    cpu: float  # seconds


# scoring only (both sides): spellings that mean the same word, as WER normalisers do
_SAME = {
    "mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay",
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
}  # fmt: skip


def _words(text: str) -> list[str]:
    return [_SAME.get(w, w) for w in normalize_text(text).split()]


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words), both normalised like Whisper's results."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def run_engine(
    decode: Callable[[dataset.Item], RecognitionResult | None], items: Iterable[dataset.Item]
) -> list[Scored]:
    out = []
    for item in items:
        began = time.process_time()
        result = decode(item)
        cpu = time.process_time() - began
        raw = result.text if result else None
        conf = result.confidence if result else 0.0
        text = raw if raw is not None and conf >= DEFAULT_MIN_CONFIDENCE else None
        out.append(Scored(item, text, raw, conf, cpu))
    return out


def summarise(rows: Sequence[Scored]) -> dict[str, Any]:
    """Per kind and condition: accuracy / rejection / WER, CPU."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        it = r.item
        keys = [f"{it.kind}", f"{it.kind} {it.path}", f"{it.kind} {it.condition}"]
        if it.snr is None or it.snr >= 20:
            keys += [f"{it.kind} ≥20dB", f"{it.kind} {it.path} ≥20dB"]
        if it.voice == "human":
            keys = [f"human-{k}" for k in keys]
        for k in keys:
            if it.kind in ("open",):
                errors, words = wer(
                    it.said if it.voice == "human" else it.expected or "", r.text or ""
                )
                table[k]["errors"].append(errors)
                table[k]["words"].append(words)
            elif it.kind == "reject":
                table[k]["ok"].append(r.text is None)
            else:
                table[k]["ok"].append(r.text == it.expected)
            table[k]["cpu"].append(r.cpu)
    out: dict[str, Any] = {}
    for k, v in table.items():
        cell: dict[str, float] = {"n": len(v["cpu"]), "cpu_ms": 1000 * float(np.mean(v["cpu"]))}
        if "words" in v:
            cell["wer"] = 100 * sum(v["errors"]) / max(1, sum(v["words"]))
        else:
            cell["pct"] = 100 * float(np.mean(v["ok"]))
        out[k] = cell
    return out


def calibration(rows: Sequence[Scored]) -> list[tuple[float, float, float]]:
    """(threshold, % right hinted answers kept, % wrong answers stopped) over thresholds."""
    right = [
        r.confidence
        for r in rows
        if r.item.kind in ("menu", "digits") and r.raw_text == r.item.expected
    ]
    wrong = [
        r.confidence
        for r in rows
        if r.item.kind in ("menu", "reject", "digits")
        and r.raw_text is not None
        and r.raw_text != r.item.expected
    ]
    out = []
    for t in (20, 30, 40, 50, 60, 70, 80):
        kept = 100 * np.mean([c >= t for c in right]) if right else float("nan")
        stopped = 100 * np.mean([c < t for c in wrong]) if wrong else float("nan")
        out.append((float(t), float(kept), float(stopped)))
    return out


async def latency(
    config: SpeechConfig, items: Sequence[dataset.Item], processes: int
) -> dict[str, float]:
    """Hand 20 utterances to the worker pool at once (20 calls ending speech together)."""
    speech = SpeechRecognition(processes=processes, config=config)
    try:
        await speech.warm_up()
        # one warm-up decode per worker (Whisper loads on its first utterance)
        await asyncio.gather(
            *(
                speech.decode("en-US", items[0].hints, items[0].audio, final=True)
                for _ in range(processes)
            )
        )
        batch = [items[i % len(items)] for i in range(CONCURRENT)]
        began = time.monotonic()
        done: list[float] = []

        async def one(it: dataset.Item) -> None:
            await speech.decode("en-US", it.hints, it.audio, final=True)
            done.append(time.monotonic() - began)

        await asyncio.gather(*(one(it) for it in batch))
        stats = speech.stats()
    finally:
        speech.close()
    ms = sorted(1000 * d for d in done)
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": ms[-1],
        "worker_cpu_ms": 1000 * stats["cpu_total"] / max(1, stats["decodes"]),
        "max_queued": stats["max_queued"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speech")
    parser.add_argument("--quick", action="store_true", help="two voices, clean and 10 dB only")
    parser.add_argument("--engines", default="pocketsphinx,whisper,auto")
    parser.add_argument(
        "--voices", help=f"comma-separated, of {', '.join(v.name for v in dataset.VOICES)}"
    )
    parser.add_argument(
        "--kinds", help="comma-separated, of menu, reject, digits, open (default: all)"
    )
    parser.add_argument("--paths", help=f"comma-separated, of {', '.join(dataset.PATHS)}")
    parser.add_argument("--no-human", action="store_true", help="skip pocketsphinx-testdata")
    parser.add_argument(
        "--whisper-model", help="tiny.en, base or a model directory (default: the server's)"
    )
    parser.add_argument("--processes", type=int, default=2, help="worker processes for latency")
    parser.add_argument("--json", help="write every figure here too")
    args = parser.parse_args(argv)
    wanted = [e for e in args.engines.split(",") if e]
    if not whisper_available():
        dropped = [e for e in wanted if e == "whisper"]
        wanted = [e for e in wanted if e != "whisper"]
        if dropped:
            print("whisper: not installed (pip install 'relaykit[whisper]'); skipped\n")
    wanted = [e for e in wanted if e != "auto"] + (["auto"] if "auto" in wanted else [])
    voices: tuple[dataset.Voice, ...] = dataset.VOICES[:2] if args.quick else dataset.VOICES
    if args.voices:
        names = args.voices.split(",")
        unknown = set(names) - {v.name for v in dataset.VOICES}
        if unknown:
            parser.error(f"unknown voices: {', '.join(sorted(unknown))}")
        voices = tuple(v for v in dataset.VOICES if v.name in names)
    kinds = tuple(args.kinds.split(",")) if args.kinds else ("menu", "reject", "digits", "open")
    unknown = set(kinds) - {"menu", "reject", "digits", "open"}
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    paths = tuple(args.paths.split(",")) if args.paths else dataset.PATHS
    if set(paths) - set(dataset.PATHS):
        parser.error(f"unknown paths: {', '.join(sorted(set(paths) - set(dataset.PATHS)))}")
    noises = (None, 10.0) if args.quick else dataset.NOISES
    synthetic = list(dataset.synthetic(voices=voices, paths=paths, noises=noises, kinds=kinds))
    human = [
        i for i in ([] if args.no_human else dataset.human()) if i.path in paths and i.kind in kinds
    ]
    print(f"# relaykit speech benchmark{' (quick)' if args.quick else ''}\n")
    missing = ": skipped" if args.no_human else ": not installed"
    print(
        f"{len(synthetic)} synthetic utterances ({len(voices)} voices × paths "
        f"{', '.join(paths)} × "
        f"noise {', '.join('clean' if n is None else f'{n:g} dB' for n in noises)}), "
        f"{len(human)} human (pocketsphinx-testdata{'' if human else missing}); "
        f"min_confidence {DEFAULT_MIN_CONFIDENCE:g}\n"
    )
    config = SpeechConfig(whisper_model=args.whisper_model)
    engines = SpeechEngines(config)

    def via(engine: str) -> Callable[[dataset.Item], RecognitionResult | None]:
        def decode(it: dataset.Item) -> RecognitionResult | None:
            utterance = engines.open(engine=engine, hints=it.hints)
            try:
                utterance.feed(it.audio)
                return utterance.finish()
            finally:
                utterance.close()

        return decode

    results: dict[str, Any] = {}
    for name in wanted:
        if name == "whisper":  # Whisper ignores hints: open speech only (hinted → pocketsphinx)
            items = [i for i in [*synthetic, *human] if i.kind == "open"]
            rows = run_engine(via("whisper"), items)
        elif name == "auto":  # hinted items: open ones are Whisper's (above)
            rows = run_engine(via("auto"), [i for i in [*synthetic, *human] if i.hints])
        else:
            rows = run_engine(via(name), [*synthetic, *human])
        results[name] = {"summary": summarise(rows), "calibration": calibration(rows)}
        print_engine(name, results[name])
    lat: dict[str, Any] = {}
    menu = [i for i in synthetic if i.kind == "menu"]
    digits = [i for i in synthetic if i.kind == "digits"]
    sentences = [i for i in synthetic if i.kind == "open"]
    runs = [
        ("pocketsphinx (menu)", "pocketsphinx", menu),
        ("auto (menu)", "auto", menu),
        ("auto (digits)", "auto", digits),
        ("whisper (sentences)", "whisper", sentences),
        ("pocketsphinx (sentences)", "pocketsphinx", sentences),
    ]
    for label, engine, batch in runs:
        if engine in wanted and batch:  # kinds left out by --kinds have no latency row
            lat[label] = asyncio.run(
                latency(dataclasses.replace(config, engine=engine), batch, args.processes)
            )
    print(f"## End of speech → result, {CONCURRENT} concurrent decodes, ", end="")
    print(f"{args.processes} worker processes\n")
    print("| engine | p50 ms | p95 ms | max ms | worker CPU ms/utterance | longest queue |")
    print("|---|---|---|---|---|---|")
    for name, v in lat.items():
        print(
            f"| {name} | {v['p50_ms']:.0f} | {v['p95_ms']:.0f} | {v['max_ms']:.0f} | "
            f"{v['worker_cpu_ms']:.0f} | {v['max_queued']:.0f} |"
        )
    print(
        "\n(measured from the hand-off to the recogniser, i.e. after `end_silence_timeout`; "
        "the media clock never waits for a decode)\n"
    )
    results["latency"] = lat
    print_targets(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def print_engine(name: str, res: dict[str, Any]) -> None:
    summary = res["summary"]
    print(f"## {name}\n")
    print("| set | n | result | CPU ms/utterance |")
    print("|---|---|---|---|")
    for key in sorted(summary):
        cell = summary[key]
        if "wer" in cell:
            value = f"WER {cell['wer']:.1f} %"
        elif key.startswith("reject"):
            value = f"{cell['pct']:.1f} % rejected"
        else:
            value = f"{cell['pct']:.1f} % right"
        print(f"| {key} | {cell['n']:.0f} | {value} | {cell['cpu_ms']:.0f} |")
    cal = res["calibration"]
    if any(not np.isnan(k) for _, k, _ in cal):
        print(
            "\nconfidence threshold → hinted answers that are right and kept / wrong and stopped:"
        )
        print("  " + ", ".join(f"{t:.0f}: {k:.0f} %/{s:.0f} %" for t, k, s in cal))
    print()


def print_targets(results: dict[str, Any]) -> None:
    """Every target, on all conditions and on clean + 20 dB SNR (without the 10 dB items)."""
    print("## Targets\n")
    print("| target | engine | goal | all conditions | | clean + 20 dB | |")
    print("|---|---|---|---|---|---|---|")

    def get(engine: str, key: str) -> float | None:
        cell = results.get(engine, {}).get("summary", {}).get(key)
        if cell is None:
            return None
        return float(cell["wer"] if "wer" in cell else cell["pct"])

    def verdict(value: float | None, ok: bool) -> str:
        return "n/a | n/a" if value is None else f"{value:.1f} | {'PASS' if ok else 'FAIL'}"

    def row(what: str, engine: str, key: str, goal: float, higher: bool, both: bool = True) -> None:
        cells = []
        for subset in ("", " ≥20dB") if both else ("",):
            value = get(engine, key + subset)
            ok = value is not None and (value >= goal if higher else value <= goal)
            cells.append(verdict(value, ok))
        if not both:
            cells.append("| ")
        sign = "≥" if higher else "≤"
        print(f"| {what} | {engine} | {sign} {goal:g} | {' | '.join(cells)} |")

    if "pocketsphinx" in results:
        auto = dict(results["pocketsphinx"]["summary"])
        auto.update(results.get("auto", {}).get("summary", {}))  # hinted items, as a server
        for key, cell in results.get("whisper", {}).get("summary", {}).items():
            auto[key] = cell  # open sentences go to Whisper when it is installed
        results["auto"] = {"summary": auto}
    for engine in ("pocketsphinx", "auto"):
        if engine not in results:
            continue
        row("menu words right %", engine, "menu", TARGETS["menu"], True)
        row("menu words right %, 16 kHz", engine, "menu 16k", TARGETS["menu"], True)
        row("menu words right %, 8 kHz µ-law", engine, "menu 8k-ulaw", TARGETS["menu"], True)
        row("out-of-menu words rejected %", engine, "reject", TARGETS["reject"], True)
        row("digit strings right %, 16 kHz", engine, "digits 16k", TARGETS["digits_16k"], True)
    for engine in ("pocketsphinx", "whisper", "auto"):
        if engine in results:
            row("open sentences WER %, synthetic", engine, "open", TARGETS["wer_synthetic"], False)
            row(
                "open sentences WER %, human",
                engine,
                "human-open",
                TARGETS["wer_human"],
                False,
                False,
            )
    for name, v in results.get("latency", {}).items():
        ok = v["p95_ms"] <= TARGETS["latency_ms"]
        print(
            f"| result latency p95 ms, {CONCURRENT} concurrent | {name} | ≤ 1000 | "
            f"{v['p95_ms']:.0f} | {'PASS' if ok else 'FAIL'} | | |"
        )
    print(
        "\n(the rejection target holds only while menu words stay ≥ 95 %: read the two rows "
        "together)\n"
    )


if __name__ == "__main__":
    sys.exit(main())
