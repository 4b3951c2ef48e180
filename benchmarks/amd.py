"""How well answering-machine detection tells machines, people and silence apart.

``python -m benchmarks.amd`` generates a labelled set and runs the server's detector
(:class:`relaykit.media.detect.MachineDetector`, v2's default thresholds) over each call's
audio frame by frame, as the media engine does, then prints the confusion table and timings
(markdown; the figures in AMD.md are its output). ``--voices N`` sets how many espeak-ng voice
variants speak each text (default 8), ``--json FILE`` keeps every verdict.

The set, every clip with a random 0.2-1.0 s of line before the first word and white noise at
-60 dBFS under everything (a quiet phone line):

- machines: voicemail greetings of 2.5 to 12 s, half of them ending in a beep (0.5 s at 1 or
  1.4 kHz) after 0.3 s, said at 80 %, 100 % and 125 % of espeak's rate;
- people: short answers ("Hello?", "Yes, speaking.", "Hi, this is Dana.") then silence;
- silence: the line alone, and the line with a cough-like click.

Expected: MACHINE for machines, HUMAN for people, UNKNOWN for silence. For machines with a
beep, READY should come at the end of the beep; without, ``end_silence_timeout`` after the
greeting.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import benchmarks  # noqa: F401  (OPENBLAS_NUM_THREADS first)
from relaykit.media.detect import MachineDetector
from relaykit.media.frames import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.record import beep
from relaykit.media.vad import VoiceActivityDetector

GREETINGS = (
    "Hi, you've reached Sam. Leave a message.",
    "You have reached the voicemail of Jordan Lee. Please leave a message after the tone.",
    "Hello, this is Maria. I can't take your call right now, but if you leave your name and "
    "number I will call you back as soon as I can.",
    "Thank you for calling Smith and Partners. Our office is currently closed. Our opening "
    "hours are Monday to Friday, nine to five. Please leave a message and we will return your "
    "call on the next working day.",
    "The person you are calling is not available. Please record your message after the tone. "
    "When you are finished, you may hang up.",
    "Hey, it's Chris. I'm probably out on the bike. Text me, or leave a message.",
)
ANSWERS = (
    "Hello?",
    "Hi.",
    "Yes?",
    "Yeah?",
    "Hello, who is this?",
    "Yes, speaking.",
    "Hi, this is Dana.",
    "Good morning.",
    "Hello, Mark speaking.",
    "Hey, what's up?",
)
RATES = (80, 100, 125)  # % of espeak's speaking rate
EXPECTED = {"machine": "MACHINE", "person": "HUMAN", "silence": "UNKNOWN"}
DEFAULT_VARIANTS = ("m1", "m3", "m7", "f1", "f3", "f5", "klatt", "whisper")


@dataclass(slots=True)
class Verdict:
    kind: str  # machine, person, silence
    text: str
    voice: str
    rate: int
    beep: bool
    answer: str | None  # HUMAN, MACHINE or UNKNOWN (None: the detector timed out)
    decided_after: float | None  # seconds from the first word (UNKNOWN: from the start)
    ready_after_end: float | None  # machines: READY minus the end of the greeting/beep
    not_ready: int


def _ssml(text: str, rate: int) -> str:
    return f'<speak><prosody rate="{rate}%">{text}</prosody></speak>'


def _clip(voice: str, text: str, rate: int) -> np.ndarray:
    from relaykit.media import tts

    with tts._LOCK:
        raw = tts._ESPEAK.synth(_ssml(text, rate), f"en-us+{voice}", ssml=True)
        return tts.EspeakTts._finish(raw, tts._ESPEAK.rate).astype(np.float64)


def _line(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, 32768 * 10 ** (-60 / 20), len(samples))
    return np.clip(samples + noise, -32768, 32767).astype(np.int16)


def _run(audio: np.ndarray, seconds: float) -> list[tuple[float, str]]:
    detector = MachineDetector("amd", 30.0, VoiceActivityDetector())
    answers: list[tuple[float, str]] = []
    frames = round(seconds / FRAME_SECONDS)
    silence = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
    for i in range(frames):
        frame = audio[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME]
        if len(frame) < SAMPLES_PER_FRAME:
            frame = silence
        for update in detector.hear(frame, None, i * FRAME_SECONDS):
            answers.append((i * FRAME_SECONDS, update.state))
        if detector.done:
            break
    return answers


def evaluate(voices: tuple[str, ...], seed: int = 5) -> list[Verdict]:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    verdicts: list[Verdict] = []
    cases: list[tuple[str, str, str, int, bool]] = []
    for voice in voices:
        for i, text in enumerate(GREETINGS):
            for rate in RATES:
                cases.append(("machine", text, voice, rate, (i + RATES.index(rate)) % 2 == 0))
        for text in ANSWERS:
            cases.append(("person", text, voice, pick.choice(RATES), False))
    for n in range(len(voices) * 4):
        cases.append(("silence", "click" if n % 2 else "", "", 100, False))
    for kind, text, voice, rate, with_beep in cases:
        lead = pick.uniform(0.2, 1.0)
        parts = [np.zeros(round(lead * SAMPLE_RATE))]
        if kind == "silence":
            if text == "click":
                parts.append(rng.normal(0, 3000, round(0.03 * SAMPLE_RATE)))
            spoken_end = lead
        else:
            speech = _clip(voice, text, rate)
            parts.append(speech)
            spoken_end = lead + len(speech) / SAMPLE_RATE
            if with_beep:
                parts.append(np.zeros(round(0.3 * SAMPLE_RATE)))
                parts.append(beep(0.5, pick.choice((1000.0, 1400.0))).astype(np.float64))
                spoken_end += 0.8
        audio = _line(np.concatenate(parts), rng)
        answers = _run(np.concatenate([audio, _line(np.zeros(8 * SAMPLE_RATE), rng)]), 30.0)
        verdict = next((a for a in answers if a[1] in ("HUMAN", "MACHINE", "UNKNOWN")), None)
        ready = next((at for at, state in answers if state == "READY"), None)
        decided = None
        if verdict is not None:
            decided = verdict[0] - (lead if kind != "silence" else 0.0)
        verdicts.append(
            Verdict(
                kind=kind,
                text=text,
                voice=voice,
                rate=rate,
                beep=with_beep,
                answer=None if verdict is None else verdict[1],
                decided_after=None if decided is None else round(decided, 2),
                ready_after_end=None if ready is None else round(ready - spoken_end, 2),
                not_ready=sum(1 for _, state in answers if state == "NOT_READY"),
            )
        )
    return verdicts


def _percentile(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "–"


def report(verdicts: list[Verdict], voices: tuple[str, ...], seconds: float) -> str:
    lines = [
        "# Answering-machine detection (AMD) accuracy",
        "",
        f"`python -m benchmarks.amd --voices {len(voices)}`: {len(verdicts)} calls, voices "
        f"{', '.join(voices)}; v2's default thresholds (initial_timeout 4.5 s, "
        "end_silence_timeout 1 s, machine_voice_threshold 1.25 s, machine_words_threshold 6); "
        f"{seconds:.0f} s of CPU for the set.",
        "",
        "| played | calls | MACHINE | HUMAN | UNKNOWN | none | correct |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("machine", "person", "silence"):
        mine = [v for v in verdicts if v.kind == kind]
        counts = Counter(v.answer for v in mine)
        right = counts[EXPECTED[kind]]
        lines.append(
            f"| {kind} | {len(mine)} | {counts['MACHINE']} | {counts['HUMAN']} | "
            f"{counts['UNKNOWN']} | {counts[None]} | {right} ({100 * right / len(mine):.1f} %) |"
        )
    right = sum(v.answer == EXPECTED[v.kind] for v in verdicts)
    lines += [
        "",
        f"Overall: {right} of {len(verdicts)} correct ({100 * right / len(verdicts):.1f} %).",
    ]
    machines = [v for v in verdicts if v.kind == "machine" and v.answer == "MACHINE"]
    people = [v for v in verdicts if v.kind == "person" and v.answer == "HUMAN"]
    lines += [
        "",
        "| timing (s) | p50 | p90 | max |",
        "|---|---|---|---|",
    ]
    for label, values in (
        ("MACHINE, after the first word", [v.decided_after for v in machines]),
        ("HUMAN, after the first word", [v.decided_after for v in people]),
        (
            "READY after the beep's end",
            [v.ready_after_end for v in machines if v.beep and v.ready_after_end is not None],
        ),
        (
            "READY after the greeting's end (no beep)",
            [v.ready_after_end for v in machines if not v.beep and v.ready_after_end is not None],
        ),
    ):
        clean = [float(x) for x in values if x is not None]
        lines.append(
            f"| {label} | {_percentile(clean, 50)} | {_percentile(clean, 90)} | "
            f"{max(clean) if clean else '–'} |"
        )
    wrong = [v for v in verdicts if v.answer != EXPECTED[v.kind]]
    if wrong:
        lines += ["", "Misjudged:", ""]
        shown = Counter((v.kind, v.text, v.answer) for v in wrong)
        for (kind, text, answer), n in sorted(shown.items(), key=lambda x: -x[1]):
            lines.append(f"- {kind} {text!r} → {answer} ({n}×)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=int, default=len(DEFAULT_VARIANTS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    voices = DEFAULT_VARIANTS[: max(1, args.voices)]
    start = time.process_time()
    verdicts = evaluate(voices)
    seconds = time.process_time() - start
    print(report(verdicts, voices, seconds))
    if args.json:
        args.json.write_text(json.dumps([asdict(v) for v in verdicts], indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
