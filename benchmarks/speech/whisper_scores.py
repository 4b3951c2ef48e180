"""``python -m benchmarks.speech.whisper_scores [--model base] [--voices …] [--paths …]``.

Whisper's raw scores (before calibration) on the benchmark's items, to calibrate a model the
way docs/speech.md says: per raw threshold, for open sentences the share of good transcripts
(WER ≤ 25 %) kept and of worse ones stopped, and the WER as scored; for digit-only decodes
(``max_digits``) the share of digit strings read right and kept, and how many words that are
not digits (menu and off-menu words said to a digit prompt) come back as digits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks.speech import dataset
from benchmarks.speech.__main__ import wer
from relaykit.media.whisper import BUNDLED_MODELS, RAW_SCORES, WhisperRecognizer

THRESHOLDS = (20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speech.whisper_scores")
    parser.add_argument("--model", default="base", choices=BUNDLED_MODELS)
    parser.add_argument("--voices", help="comma-separated voice names (default: all)")
    parser.add_argument("--paths", default="16k,8k-ulaw")
    parser.add_argument("--kinds", default="open,digits", help="open, digits or both")
    args = parser.parse_args(argv)
    voices = dataset.VOICES
    if args.voices:
        voices = tuple(v for v in dataset.VOICES if v.name in args.voices.split(","))
    paths = tuple(args.paths.split(","))
    kinds = args.kinds.split(",")
    rec = WhisperRecognizer(model=args.model, calibration=RAW_SCORES)
    rec.warm_up()
    print(f"# Whisper {args.model} raw scores: {', '.join(v.name for v in voices)}; {paths}\n")
    if "open" in kinds:
        rows = []  # (raw, errors, words)
        for it in dataset.synthetic(voices=voices, paths=paths, kinds=("open",)):
            result = rec.transcribe(it.audio, "en")
            errors, words = wer(it.expected or "", result.text if result else "")
            rows.append((result.confidence if result else 0.0, errors, words))
        print("open sentences: raw threshold → good kept / bad stopped / WER as scored")
        for t in THRESHOLDS:
            good = [r for r in rows if r[1] <= 0.25 * r[2]]
            bad = [r for r in rows if r[1] > 0.25 * r[2]]
            kept = sum(r[0] >= t for r in good) / max(1, len(good))
            stopped = sum(r[0] < t for r in bad) / max(1, len(bad))
            scored = sum(e if c >= t else w for c, e, w in rows) / max(1, sum(w for *_, w in rows))
            print(f"  {t}: {100 * kept:.0f} % / {100 * stopped:.0f} % / {100 * scored:.1f} %")
        every = sum(e for _, e, _ in rows) / max(1, sum(w for *_, w in rows))
        print(f"  (every transcript kept: {100 * every:.1f} %)\n")
    if "digits" in kinds:
        right: list[float] = []  # raw of digit strings read right
        wrong: list[float] = []  # raw of digit strings read wrong
        words: list[float] = []  # raw of non-digit words read as digits
        n_digits = n_words = 0
        items = dataset.synthetic(voices=voices, paths=paths, kinds=("menu", "reject", "digits"))
        for it in items:
            result = rec.transcribe(it.audio, "en", max_digits=4)
            if it.kind == "digits":
                n_digits += 1
                if result is not None:
                    (right if result.text == it.expected else wrong).append(result.confidence)
            else:
                n_words += 1
                if result is not None:
                    words.append(result.confidence)
        print("digit decodes: raw threshold → digit strings right and kept / wrong kept / ", end="")
        print(f"non-digit words kept as digits (of {n_digits} strings, {n_words} words)")
        for t in THRESHOLDS:
            print(
                f"  {t}: {100 * sum(c >= t for c in right) / max(1, n_digits):.1f} % / "
                f"{sum(c >= t for c in wrong)} / {sum(c >= t for c in words)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
