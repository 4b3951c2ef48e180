"""Call timelines: one picture of a call from its event log (JSON) and its stereo WAV.

From top to bottom, on one time axis: what the caller sent (key presses, speech, files) as
labelled spans, with the keys the IVR detected as markers; the caller's audio; the IVR's audio;
the IVR's media items and its record, detect, tap and send-digits components as labelled
spans; and call states, prompt results and detector answers as annotated vertical lines
through every row. Labels are measured before anything is drawn and packed
into as many rows as they need, so none overlaps another.

``render_timeline(log, samples, "call.png")`` draws one; ``load_call("call.json")`` reads a log
written by :meth:`VirtualCaller.save_wav` (or the plugin's artifacts) and the WAV beside it.
The command line does both: ``relaykit timeline call.json -o call.png``.
"""

from __future__ import annotations

__all__ = ["load_call", "render_timeline", "timeline_figure"]

import json
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..calls import (
    CallOffered,
    CallStateChanged,
    ComponentChanged,
    KeyDetected,
    PlayStateChanged,
    PromptEnded,
    describe,
    event_from_dict,
)
from ..calls.log import Span, caller_spans, component_spans, media_spans
from ..errors import MissingExtraError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_CALLER = "#00897b"  # teal
_IVR = "#7b1fa2"  # purple
_STATE = "#455a64"  # blue grey
_GOOD = "#2e7d32"
_BAD = "#c62828"
_NOTE = "#ef6c00"
_COMPONENT = "#1565c0"  # blue: record, detect, tap, send digits
_PRIORITY = (_STATE, _COMPONENT, _NOTE, _GOOD, _BAD)  # the colour a merged label takes
_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.15}  # over lines
_FONT = 9.0  # points
_DPI = 150
_LANE_IN = 0.24  # inches per row of labels
_WAVE_IN = 1.1
_LEFT_IN, _RIGHT_IN = 1.0, 1.6  # margins, inches; labels near the end run into the right one
_PAD_PX = 8  # horizontal room between two labels of one row
_MAX_LABEL_FRACTION = 0.45  # a label is cut (…) beyond this share of the plot width


def load_call(path: str | Path) -> tuple[dict[str, Any], np.ndarray | None]:
    """The event log at ``path`` and its recording ((n, 2) int16, or None if missing)."""
    path = Path(path)
    log = json.loads(path.read_text())
    if not isinstance(log, dict) or not isinstance(log.get("events"), list):
        raise ValueError("not a relaykit call log (no events)")
    wav = path.with_name(log["wav"]) if log.get("wav") else path.with_suffix(".wav")
    samples = None
    if wav.exists():
        with wave.open(str(wav), "rb") as f:
            raw = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
            samples = raw.reshape(-1, f.getnchannels())
    return log, samples


@dataclass(slots=True)
class _Label:
    x: float  # where the text starts (seconds)
    end: float  # where the item ends (a span) or x (a point)
    text: str
    color: str
    span: bool = False
    row: int = 0
    width: float = 0.0  # seconds the text takes
    offset: float = 0.0  # seconds from x to where the text starts (< 0: no room on the right)

    @property
    def left(self) -> float:
        return min(self.x, self.x + self.offset)


def _packed(
    labels: list[_Label],
    measure: Any,
    sec_per_px: float,
    limit: float,
    xmax: float,
    gap_px: float = 0.0,
) -> int:
    """Give each label a row so that no two in one row overlap; returns the number of rows.

    Text starts ``gap_px`` right of its point. A label longer than ``limit`` seconds is cut
    with "…"; one that would run past ``xmax`` is moved left until it ends there.
    """
    for label in labels:
        label.text = _fit(label.text, measure, limit / sec_per_px)
        label.width = measure(label.text) * sec_per_px
        label.offset = gap_px * sec_per_px
        overrun = label.x + label.offset + label.width - xmax
        if overrun > 0:
            label.offset -= overrun
    ends: list[float] = []
    for label in sorted(labels, key=lambda lb: (lb.left, lb.end)):
        right = max(label.end, label.x + label.offset + label.width) + _PAD_PX * sec_per_px
        for row, end in enumerate(ends):
            if end <= label.left:
                label.row, ends[row] = row, right
                break
        else:
            label.row = len(ends)
            ends.append(right)
    return len(ends)


def _fit(text: str, measure: Any, max_px: float) -> str:
    if measure(text) <= max_px:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid].rstrip() + "…") <= max_px:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def _merge_points(points: Sequence[tuple[float, str, str]], within: float) -> list[_Label]:
    """Vertical-line events close in time share one label ("ending · ended (hangup)")."""
    merged: list[_Label] = []
    for at, text, color in sorted(points, key=lambda p: p[0]):
        if merged and at - merged[-1].x <= within and merged[-1].color in (color, _GOOD, _BAD):
            last = merged[-1]
            if last.text.startswith("ending") and text.startswith("ended"):
                last.text = text  # "ending (hangup)" then "ended (hangup)": say it once
                continue
            last.text = f"{last.text} · {text}"
            if _PRIORITY.index(color) > _PRIORITY.index(last.color):
                last.color = color
        else:
            merged.append(_Label(at, at, text, color))
    return merged


def _result_label(result: PromptEnded) -> tuple[str, str]:
    kind = result.result_type
    params = result.params or {}
    reason = result.reason
    if kind == "digit":
        value = str(params.get("digits", ""))
        term = params.get("terminator")
        text = f"digits {value!r}" + (f" + {term}" if term else "")
    elif kind == "speech":
        text = f"speech {params.get('text', '')!r}"
        if "confidence" in params:
            text += f" ({float(params['confidence']):.0f}%)"
    else:
        text = str(kind)
    good = kind in ("digit", "speech")
    return f"result: {text}" + (f" [{reason}]" if reason else ""), _GOOD if good else _BAD


def _action_label(action: Span) -> str:
    kind, label = action.kind, action.label
    if kind == "press":
        return f"presses {label}"
    if kind == "say":
        return f"says “{label}”"
    if kind == "play":
        return f"plays {label}"
    return "sends audio"


def _media_label(item: Span) -> str:
    kind, label = item.kind, item.label
    if kind == "tts":
        return f"“{label}”"
    if kind == "audio":
        return "♪ " + (label.rstrip("/").rsplit("/", 1)[-1] or label)
    if kind == "ringtone":
        return f"ringtone {label}"
    return f"{kind} {label}".strip()


def render_timeline(
    log: dict[str, Any],
    samples: np.ndarray | None,
    out: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw the call described by ``log`` (see :meth:`VirtualCaller.event_log`) to ``out``.

    ``samples`` is the stereo recording ((n, 2) int16 at the log's sample rate: caller left,
    IVR right) or None to draw the events alone. The format follows ``out``'s suffix (PNG,
    SVG, PDF).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    timeline_figure(log, samples, title=title).savefig(out, dpi=_DPI)
    return out


def timeline_figure(
    log: dict[str, Any], samples: np.ndarray | None, *, title: str | None = None
) -> Figure:
    """The timeline as a matplotlib :class:`~matplotlib.figure.Figure` (no pyplot involved).

    Raises MissingExtraError when matplotlib (the ``plot`` extra) is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.font_manager import FontProperties
        from matplotlib.gridspec import GridSpec
        from matplotlib.ticker import MultipleLocator
    except ImportError:
        raise MissingExtraError("drawing a call timeline", "plot") from None

    rate = int(log.get("sample_rate", 16000))
    events = [event_from_dict(e) for e in log.get("events", [])]
    sent, heard = caller_spans(events), media_spans(events)
    components = component_spans(events)
    n = 0 if samples is None else len(samples)
    ends = [float(log.get("duration") or 0.0), n / rate]
    ends += [s.end or s.start for s in (*sent, *heard, *components)]
    ends += [e.at for e in events]
    duration = max([1.0, *ends])
    duration = float(np.ceil(duration * 10) / 10 + 0.1)

    width_in = float(np.clip(9.0 + 0.3 * duration, 12.0, 30.0))
    step = next((s for s in (0.5, 1, 2, 5, 10, 20, 30, 60) if duration / s <= 16), 120.0)
    plot_px = (width_in - _LEFT_IN - _RIGHT_IN) * _DPI
    sec_per_px = duration / plot_px
    limit = duration * _MAX_LABEL_FRACTION
    text_end = duration + (_RIGHT_IN * _DPI - 10) * sec_per_px  # labels may use the margin

    fig = Figure(figsize=(width_in, 4.0), dpi=_DPI)
    renderer = FigureCanvasAgg(fig).get_renderer()  # type: ignore[no-untyped-call]
    font = FontProperties(size=_FONT)

    def measure(text: str) -> float:
        w, _, _ = renderer.get_text_width_height_descent(text, font, ismath=False)
        return float(w)

    # -- labels: caller actions and keys, IVR media, call events
    caller_labels = [
        _Label(a.start, a.end or a.start, _action_label(a), _CALLER, span=True)
        for a in sent
        if a.kind != "silence"
    ]
    keys = [_Label(e.at, e.at, e.key, _IVR) for e in events if isinstance(e, KeyDetected)]
    media = [
        _Label(h.start, h.end if h.end is not None else duration, _media_label(h), _IVR, True)
        for h in heard
        if h.kind != "silence"
    ]
    media += [
        _Label(c.start, c.end if c.end is not None else duration, c.label, _COMPONENT, True)
        for c in components
    ]
    points: list[tuple[float, str, str]] = []
    for event in events:
        if isinstance(event, CallOffered):
            points.append((event.at, "call offered", _STATE))
        elif isinstance(event, CallStateChanged):
            points.append((event.at, describe(event) or event.state, _STATE))
        elif isinstance(event, PromptEnded):
            text, color = _result_label(event)
            points.append((event.at, text, color))
        elif isinstance(event, PlayStateChanged) and event.cause == "barge_in":
            points.append((event.at, "barge-in", _NOTE))
        elif (
            isinstance(event, ComponentChanged)
            and event.component == "detect"
            and not event.final
            and event.state != "detecting"
        ):
            points.append((event.at, f"{event.params.get('type', '')}: {event.state}", _COMPONENT))
    marks = _merge_points(points, within=2 * sec_per_px * _PAD_PX)

    caller_rows = _packed(caller_labels, measure, sec_per_px, limit, text_end, gap_px=3)
    key_rows = _packed(keys, measure, sec_per_px, limit, text_end, gap_px=2)
    media_rows = _packed(media, measure, sec_per_px, limit, text_end, gap_px=3)
    event_rows = _packed(marks, measure, sec_per_px, limit, text_end, gap_px=3)

    rows = [
        ("caller", max(caller_rows, 1) + max(key_rows, 1), "lane"),
        ("caller audio", None, "wave"),
        ("IVR audio", None, "wave"),
        ("IVR", max(media_rows, 1), "lane"),
        ("events", max(event_rows, 1), "lane"),
    ]
    heights = [_WAVE_IN if lanes is None else (lanes + 0.6) * _LANE_IN for _, lanes, _ in rows]
    top_in, bottom_in = 0.55, 0.5
    height_in = sum(heights) + top_in + bottom_in + 0.1 * len(rows)
    fig.set_size_inches(width_in, height_in)
    grid = GridSpec(
        len(rows),
        1,
        figure=fig,
        height_ratios=heights,
        left=_LEFT_IN / width_in,
        right=1 - _RIGHT_IN / width_in,
        top=1 - top_in / height_in,
        bottom=bottom_in / height_in,
        hspace=0.1 * len(rows) / sum(heights),
    )
    axes = [fig.add_subplot(grid[i, 0]) for i in range(len(rows))]
    for ax, (name, _, _kind) in zip(axes, rows, strict=True):
        ax.set_xlim(0, duration)
        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.xaxis.set_minor_locator(MultipleLocator(step / (5 if step in (1, 10) else 4)))
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=_FONT, labelpad=8)
        ax.tick_params(axis="x", labelsize=_FONT - 1)
        ax.set_yticks([])
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        if ax is not axes[-1]:
            ax.tick_params(axis="x", labelbottom=False, length=0)
    axes[-1].set_xlabel("call time (s)", fontsize=_FONT, loc="right")  # clear of the legend

    # -- waveforms
    for ax, channel, color in ((axes[1], 0, _CALLER), (axes[2], 1, _IVR)):
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="#bdbdbd", linewidth=0.5)
        if samples is None or n == 0:
            ax.text(0.01, 0.5, "no recording", transform=ax.transAxes, fontsize=_FONT,
                    color="#9e9e9e", va="center")  # fmt: skip
            continue
        x = samples[:, min(channel, samples.shape[1] - 1)].astype(np.float32)
        bins = max(1, int(plot_px))
        per = max(1, int(np.ceil(len(x) / bins)))
        padded = np.pad(x, (0, per * int(np.ceil(len(x) / per)) - len(x)))
        blocks = padded.reshape(-1, per)
        peak = max(float(np.abs(x).max()), 1000.0)
        t = (np.arange(len(blocks)) * per + per / 2) / rate
        ax.fill_between(t, blocks.min(axis=1) / peak, blocks.max(axis=1) / peak,
                        color=color, linewidth=0, alpha=0.85)  # fmt: skip

    # -- labelled spans and markers
    def draw_spans(ax: Any, labels: list[_Label], rows_n: int, base: int = 0) -> None:
        ax.set_ylim(-0.2, rows_n + base + 0.4)
        for label in labels:
            y = rows_n - 1 - label.row + base + 0.5  # first row on top
            if label.span:
                ax.barh(y - 0.3, label.end - label.x, left=label.x, height=0.14,
                        color=label.color, alpha=0.35, linewidth=0)  # fmt: skip
                ax.plot([label.x, label.x], [y - 0.4, y + 0.1], color=label.color, linewidth=1)
            ax.text(label.x + label.offset, y - 0.12, label.text, fontsize=_FONT,
                    color=label.color, va="bottom", ha="left", bbox=_BOX, zorder=5)  # fmt: skip

    caller_n = max(caller_rows, 1)
    draw_spans(axes[0], caller_labels, caller_n, base=max(key_rows, 1))
    axes[0].set_ylim(-0.2, caller_n + max(key_rows, 1) + 0.4)
    for key in keys:  # keys the IVR detected: a tick and the key, in the bottom rows
        y = max(key_rows, 1) - 1 - key.row + 0.5
        axes[0].plot([key.x], [y - 0.25], marker="v", markersize=4, color=_IVR, linewidth=0)
        axes[0].text(key.x + key.offset, y - 0.12, key.text, fontsize=_FONT - 0.5,
                     color=_IVR, va="bottom", ha="left", bbox=_BOX, zorder=5)  # fmt: skip
    draw_spans(axes[3], media, max(media_rows, 1))

    ax = axes[4]
    ax.set_ylim(-0.2, max(event_rows, 1) + 0.4)
    for mark in marks:
        y = max(event_rows, 1) - 1 - mark.row + 0.5
        ax.text(mark.x + mark.offset, y - 0.12, mark.text, fontsize=_FONT,
                color=mark.color, va="bottom", ha="left", bbox=_BOX, zorder=5)  # fmt: skip
    for mark in marks:
        for other in axes:
            other.axvline(mark.x, color=mark.color, linewidth=0.9, alpha=0.7,
                          linestyle="-" if mark.color != _STATE else "--")  # fmt: skip

    if title is None:
        state = str(log.get("state", ""))
        reason = log.get("end_reason")
        title = (
            f"call {str(log.get('call_id', ''))[:8]} · context {log.get('context', '?')!r} · "
            f"{log.get('from', '?')} → {log.get('to', '?')} · {duration - 0.1:.1f} s · "
            f"{state}{f' ({reason})' if reason and state == 'ended' else ''}"
        )
    fig.suptitle(title, x=_LEFT_IN / width_in, ha="left", fontsize=_FONT + 2, y=1 - 0.2 / height_in)
    legend = (
        "teal: caller · purple: IVR · blue: components · dashed: state · green/red: result · "
        "orange: barge-in"
    )
    fig.text(0.1 / width_in, 0.12 / height_in, legend, ha="left", fontsize=_FONT - 1,
             color="#757575")  # fmt: skip

    return fig
