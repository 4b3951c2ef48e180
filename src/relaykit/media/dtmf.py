"""In-band DTMF: a tone generator and a batch detector for many calls at once.

Generator
    :func:`generate_dtmf` renders keys as dual tones (each tone at ``level_dbfs``, where a
    full-scale sine is 0 dBFS) followed by ``gap_ms`` of silence.

Detector
    :class:`DtmfDetector` decodes one 20 ms frame per channel per tick, vectorised over channels:
    1000 calls cost one small matrix product and a few dozen numpy operations per tick.

    Method ("Goertzel or equal"):

    1. Each 20 ms frame is cut into four 5 ms sub-blocks. One matrix product gives every
       sub-block's complex DFT at the 8 DTMF frequencies, plus each sub-block's AC energy.
    2. Analysis windows are 20 ms long at a 5 ms hop (four per frame, the last three sub-blocks
       of the previous frame are kept per channel). A window's DFT is the sum of its four
       sub-block DFTs, phase-rotated; rotating for ``f`` and ``f * (1 ± 1 %)`` and keeping the
       strongest gives a flat response over the ±1.5 % frequency tolerance of ITU-T Q.24 while
       keeping the 50 Hz resolution a 20 ms window needs between adjacent row tones.
    3. A window *has key K* when all of these hold:

       - the strongest row tone and the strongest column tone are each above ``floor_dbfs``;
       - together they carry at least ``min_tone_ratio`` of the window's AC power (this rejects
         speech, music, noise and windows only partly filled with tone);
       - each beats the runner-up of its group by ``group_margin_db``;
       - twist within limits: column at most ``normal_twist_db`` above the row tone, row at
         most ``reverse_twist_db`` above the column tone;
       - every 5 ms sub-block carries at least ``min_block_share`` of the window's mean
         sub-block energy, i.e. the tone fills the whole window (duration test).

    4. A key is confirmed on its onset after ``confirm_windows`` (4) consecutive windows agree,
       and released after ``release_windows`` (8) consecutive windows without it.

    Timing: a window passes only when tone fills at least ~17 ms of its 20 ms, so a tone of
    20 ms or less yields at most 2 passing windows, and a 40 ms tone always yields at least 4
    (whatever its alignment to frame boundaries). A dropout of 10 ms or less fails at most ~6
    windows and does not split a held key; a pause of 40 ms or more fails at least 10, so the
    same key pressed again counts twice.

Limits
    Pure tones at exactly two DTMF frequencies are DTMF as far as any detector can tell: music
    that plays such a pair cleanly for 40 ms will be detected. Tone levels below ``floor_dbfs``
    (-36 dBFS per tone by default) are ignored. Keys are reported on onset, not on release, and
    their durations are not reported.
"""

from __future__ import annotations

__all__ = [
    "COL_FREQS",
    "DTMF_FREQS",
    "DTMF_KEYS",
    "ROW_FREQS",
    "ChannelDtmfDetector",
    "DtmfDetector",
    "generate_dtmf",
]

import math

import numpy as np

from relaykit.media.frames import FRAME_SECONDS, SAMPLE_RATE

DTMF_KEYS = "123A456B789C*0#D"
ROW_FREQS: tuple[float, ...] = (697.0, 770.0, 852.0, 941.0)
COL_FREQS: tuple[float, ...] = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_FREQS: tuple[float, ...] = ROW_FREQS + COL_FREQS

_KEY_INDEX = {key: i for i, key in enumerate(DTMF_KEYS)}
_KEY_INDEX.update({key.lower(): i for key, i in _KEY_INDEX.items() if key.isalpha()})

_FULL_SCALE = 32768.0
# Relative detunings at which each tone is measured: the strongest of the inner ones is the tone's
# power; the outer probes only check that the spectral peak lies within about ±2.25 %.
_DETUNE_IN = (0.0, -0.0075, 0.0075, -0.015, 0.015)
_DETUNE_OUT = (-0.03, 0.03)
_DETUNE = _DETUNE_IN + _DETUNE_OUT
_MAX_TONE_GAIN = 0.5  # two tones at half scale each peak at full scale


def _parse_keys(digits: str) -> list[int]:
    out = []
    for pos, ch in enumerate(digits):
        idx = _KEY_INDEX.get(ch)
        if idx is None:
            raise ValueError(f"invalid DTMF key {ch!r} at position {pos} in {digits!r}")
        out.append(idx)
    return out


def generate_dtmf(
    digits: str,
    *,
    sample_rate: int = SAMPLE_RATE,
    tone_ms: float = 100,
    gap_ms: float = 100,
    level_dbfs: float = -10.0,
) -> np.ndarray:
    """Render ``digits`` as int16 DTMF: per key ``tone_ms`` of dual tone, then ``gap_ms`` of silence.

    Each of the two tones is at ``level_dbfs`` (a full-scale sine is 0 dBFS); the level must be
    at most -6.02 dBFS so that the sum of the two tones can never clip.
    """
    keys = _parse_keys(digits)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if sample_rate < 2 * max(DTMF_FREQS) + 1:
        raise ValueError(f"sample_rate {sample_rate} is too low for DTMF")
    if not tone_ms >= 1:
        raise ValueError(f"tone_ms must be at least 1, got {tone_ms}")
    if not gap_ms >= 0:
        raise ValueError(f"gap_ms must be non-negative, got {gap_ms}")
    gain = 10.0 ** (level_dbfs / 20.0) if math.isfinite(level_dbfs) else math.nan
    if not gain <= _MAX_TONE_GAIN:
        raise ValueError(f"level_dbfs must be <= -6.02 (two tones would clip), got {level_dbfs}")

    n_tone = round(tone_ms * sample_rate / 1000)
    n_gap = round(gap_ms * sample_rate / 1000)
    t = np.arange(n_tone) * (2 * np.pi / sample_rate)
    amp = 32767.0 * gain
    out = np.zeros(len(keys) * (n_tone + n_gap), dtype=np.int16)
    for i, k in enumerate(keys):
        tone = amp * (np.sin(ROW_FREQS[k // 4] * t) + np.sin(COL_FREQS[k % 4] * t))
        start = i * (n_tone + n_gap)
        out[start : start + n_tone] = np.round(tone).astype(np.int16)
    return out


class DtmfDetector:
    """Batch DTMF detector: many independent channels, one 20 ms frame per channel per call.

    Use :meth:`add_channel` to get a channel id, then call :meth:`process` every tick with the
    ids and their next frames. Per-channel state lives in numpy arrays indexed by channel id.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        *,
        floor_dbfs: float = -36.0,
        min_tone_ratio: float = 0.80,
        group_margin_db: float = 6.0,
        normal_twist_db: float = 6.0,
        reverse_twist_db: float = 4.0,
        min_block_share: float = 0.5,
        confirm_windows: int = 4,
        release_windows: int = 8,
    ) -> None:
        if sample_rate % 200 or sample_rate < 4000:
            raise ValueError(f"sample_rate must be a multiple of 200 Hz >= 4000, got {sample_rate}")
        if confirm_windows < 1 or release_windows < 1:
            raise ValueError("confirm_windows and release_windows must be >= 1")
        self.sample_rate = sample_rate
        self.frame_size = round(sample_rate * FRAME_SECONDS)
        self._block = self.frame_size // 4  # 5 ms sub-block
        self._win = 4 * self._block  # 20 ms analysis window

        self._floor = (_FULL_SCALE * 10.0 ** (floor_dbfs / 20.0)) ** 2  # amplitude**2
        self._min_ratio = float(min_tone_ratio)
        self._margin = 10.0 ** (group_margin_db / 10.0)
        self._normal = 10.0 ** (normal_twist_db / 10.0)
        self._reverse = 10.0 ** (reverse_twist_db / 10.0)
        self._block_share = float(min_block_share)
        self._confirm = int(confirm_windows)
        self._release = int(release_windows)

        self._basis, self._combine = self._build_bases()

        # Per-channel state, grown by doubling.
        self._cap = 0
        self._next_id = 0
        self._free: list[int] = []
        self._in_use = np.zeros(0, dtype=bool)
        self._hist_dft = np.zeros((0, 3, 16), dtype=np.float32)  # last 3 sub-block DFTs
        self._hist_sum = np.zeros((0, 3), dtype=np.float32)  # last 3 sub-block sums
        self._hist_energy = np.zeros((0, 3), dtype=np.float32)  # last 3 sub-block sum(x^2)
        self._cand = np.zeros(0, dtype=np.int8)  # key of the current run of windows, -1 none
        self._run = np.zeros(0, dtype=np.int32)  # length of that run
        self._held = np.zeros(0, dtype=np.int8)  # confirmed key still down, -1 none
        self._miss = np.zeros(0, dtype=np.int32)  # windows since the held key was last seen

    # -- construction ---------------------------------------------------------------------

    def _build_bases(self) -> tuple[np.ndarray, np.ndarray]:
        b = self._block
        n = np.arange(b)
        freqs = np.asarray(DTMF_FREQS)
        w = 2 * np.pi * freqs / self.sample_rate
        # Sub-block DFT: columns (re f0, im f0, re f1, im f1, ...).
        basis = np.empty((b, 16))
        basis[:, 0::2] = np.cos(np.outer(n, w))
        basis[:, 1::2] = -np.sin(np.outer(n, w))

        # Per frequency, map 7 sub-block DFTs (re, im interleaved) to 4 windows x 3 detunings
        # (re, im): X = sum_i Y[w + i] * exp(-j * w' * b * i), w' the detuned frequency.
        detune = 1.0 + np.asarray(_DETUNE)
        nd = len(detune)
        combine = np.zeros((8, 14, 4 * nd * 2))
        for j, f in enumerate(freqs):
            for d, mult in enumerate(detune):
                wd = 2 * np.pi * f * mult / self.sample_rate
                # The sub-block DFTs are taken at f, not f * mult: undo their (known) loss for
                # a tone at f * mult, so every detuning measures a pure tone at full amplitude.
                half = (wd - w[j]) / 2
                gain = abs(math.sin(half * b) / (b * math.sin(half))) if half else 1.0
                for win in range(4):
                    col = (win * nd + d) * 2
                    for i in range(4):
                        c, s = math.cos(wd * b * i) / gain, -math.sin(wd * b * i) / gain
                        row = (win + i) * 2
                        combine[j, row, col] += c  # re += a c - b s
                        combine[j, row + 1, col] -= s
                        combine[j, row, col + 1] += s  # im += a s + b c
                        combine[j, row + 1, col + 1] += c
        # Scale so that |X|^2 is the squared amplitude of a sine: A = 2|X|/N.
        combine *= 2.0 / self._win
        return basis.astype(np.float32), combine.astype(np.float32)

    # -- channels -------------------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = max(16, self._cap)
        while cap < need:
            cap *= 2
        if cap == self._cap:
            return

        def grown(a: np.ndarray, fill: int | float) -> np.ndarray:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._in_use = grown(self._in_use, False)
        self._hist_dft = grown(self._hist_dft, 0.0)
        self._hist_sum = grown(self._hist_sum, 0.0)
        self._hist_energy = grown(self._hist_energy, 0.0)
        self._cand = grown(self._cand, -1)
        self._run = grown(self._run, 0)
        self._held = grown(self._held, -1)
        self._miss = grown(self._miss, 0)
        self._cap = cap

    def add_channel(self) -> int:
        """Allocate a channel and return its id (freed ids are reused, lowest first)."""
        if self._free:
            self._free.sort(reverse=True)
            ch = self._free.pop()
        else:
            ch = self._next_id
            self._next_id += 1
            self._grow(self._next_id)
        self._in_use[ch] = True
        self.reset(ch)
        return ch

    def remove_channel(self, ch: int) -> None:
        """Free channel ``ch``; its id may be handed out again by :meth:`add_channel`."""
        self._check(ch)
        self.reset(ch)
        self._in_use[ch] = False
        self._free.append(ch)

    def reset(self, ch: int) -> None:
        """Forget channel ``ch``'s audio history and key state."""
        self._check(ch)
        self._hist_dft[ch] = 0.0
        self._hist_sum[ch] = 0.0
        self._hist_energy[ch] = 0.0
        self._cand[ch] = -1
        self._run[ch] = 0
        self._held[ch] = -1
        self._miss[ch] = 0

    def _check(self, ch: int) -> None:
        if not (0 <= ch < self._next_id and self._in_use[ch]):
            raise KeyError(f"no such DTMF channel: {ch}")

    @property
    def channel_count(self) -> int:
        """Number of channels currently allocated."""
        return self._next_id - len(self._free)

    # -- detection ------------------------------------------------------------------------

    def process(self, channels: np.ndarray, frames: np.ndarray) -> list[tuple[int, str]]:
        """Feed the next frame of each listed channel; return ``(channel, key)`` onsets.

        ``channels`` holds k distinct channel ids, ``frames`` is (k, frame_size) audio on the
        int16 scale. Returned hits are in the order of ``channels``.
        """
        ch = np.asarray(channels, dtype=np.intp)
        x = np.asarray(frames)
        k = ch.shape[0]
        if ch.ndim != 1 or x.shape != (k, self.frame_size):
            raise ValueError(
                f"expected channels (k,) and frames (k, {self.frame_size}), "
                f"got {ch.shape} and {x.shape}"
            )
        if k == 0:
            return []
        if ch.min() < 0 or ch.max() >= self._next_id or not self._in_use[ch].all():
            raise KeyError("process() got an unknown DTMF channel id")

        keys = self._window_keys(ch, x.astype(np.float32, copy=False))
        return self._update(ch, keys)

    def _measure(self, ch: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per window: squared tone amplitudes (8, k, 4), AC power (k, 4), min block AC (k, 4)."""
        k = x.shape[0]
        blocks = x.reshape(k, 4, self._block)
        # Sub-block DFTs, sums and energies, prefixed by the 3 kept from the previous frame.
        dft = np.empty((k, 7, 16), dtype=np.float32)
        dft[:, :3] = self._hist_dft[ch]
        np.matmul(blocks, self._basis, out=dft[:, 3:])
        sums = np.empty((k, 7), dtype=np.float32)
        sums[:, :3] = self._hist_sum[ch]
        blocks.sum(axis=2, out=sums[:, 3:])
        energy = np.empty((k, 7), dtype=np.float32)
        energy[:, :3] = self._hist_energy[ch]
        np.einsum("kbn,kbn->kb", blocks, blocks, out=energy[:, 3:])
        self._hist_dft[ch] = dft[:, 4:]
        self._hist_sum[ch] = sums[:, 4:]
        self._hist_energy[ch] = energy[:, 4:]

        # Window DFTs: per frequency, (k, 14) @ (14, 24) -> 4 windows x 3 detunings x re/im.
        per_freq = dft.reshape(k, 7, 8, 2).transpose(2, 0, 1, 3).reshape(8, k, 14)
        wx = np.matmul(per_freq, self._combine).reshape(8, k, 4, len(_DETUNE), 2)
        power = np.square(wx).sum(axis=4)  # (8, k, 4, detunings): squared tone amplitudes
        n_in = len(_DETUNE_IN)
        amp2 = power[..., :n_in].max(axis=3)  # (8, k, 4)
        centred = amp2 >= power[..., n_in:].max(axis=3)  # peak within ~±2.25 % of nominal

        # Window AC power (mean of x^2 minus mean^2) and per-block AC energies.
        n = self._block
        block_ac = energy - sums * sums / n  # (k, 7)
        w_energy = energy[:, 0:4] + energy[:, 1:5] + energy[:, 2:6] + energy[:, 3:7]
        w_sum = sums[:, 0:4] + sums[:, 1:5] + sums[:, 2:6] + sums[:, 3:7]
        w_power = (w_energy - w_sum * w_sum / self._win) / self._win  # (k, 4)
        b_min = np.minimum(
            np.minimum(block_ac[:, 0:4], block_ac[:, 1:5]),
            np.minimum(block_ac[:, 2:6], block_ac[:, 3:7]),
        )

        return amp2, centred, w_power, b_min

    def _window_keys(self, ch: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Key index (or -1) of each of the frame's 4 windows: shape (k, 4) int8."""
        amp2, centred, w_power, b_min = self._measure(ch, x)
        rows = np.sort(amp2[:4], axis=0)  # ascending along the group
        cols = np.sort(amp2[4:], axis=0)
        r1, r2 = rows[3], rows[2]
        c1, c2 = cols[3], cols[2]
        ok = (r1 >= self._floor) & (c1 >= self._floor)
        ok &= (r1 + c1) * 0.5 >= self._min_ratio * w_power
        ok &= (r1 >= self._margin * r2) & (c1 >= self._margin * c2)
        ok &= (c1 <= self._normal * r1) & (r1 <= self._reverse * c1)
        ok &= b_min * 4.0 >= self._block_share * (w_power * self._win)
        ri = np.argmax(amp2[:4], axis=0)
        ci = np.argmax(amp2[4:], axis=0)
        ok &= np.take_along_axis(centred[:4], ri[None], 0)[0]
        ok &= np.take_along_axis(centred[4:], ci[None], 0)[0]
        key = ri * 4 + ci
        return np.where(ok, key, -1).astype(np.int8)

    def _update(self, ch: np.ndarray, keys: np.ndarray) -> list[tuple[int, str]]:
        """Advance the per-channel run/hold state over the frame's windows; collect onsets."""
        # Only channels with a key in this frame or state to advance need the loop.
        busy = (keys >= 0).any(axis=1) | (self._cand[ch] >= 0) | (self._held[ch] >= 0)
        if not busy.any():
            return []
        idx = np.flatnonzero(busy)
        c = ch[idx]
        keys = keys[idx]
        cand, run = self._cand[c], self._run[c]
        held, miss = self._held[c], self._miss[c]
        onset = np.full(len(c), -1, dtype=np.int8)
        for w in range(keys.shape[1]):
            d = keys[:, w]
            same = d == cand
            run = np.where(same, run + 1, 1)
            cand = d
            seen = d == held
            miss = np.where(seen, 0, miss + 1)
            held = np.where(miss >= self._release, -1, held).astype(np.int8)
            new = (d >= 0) & (run >= self._confirm) & ~seen
            if new.any():
                onset = np.where(new, d, onset)
                held = np.where(new, d, held).astype(np.int8)
                miss = np.where(new, 0, miss)
        self._cand[c], self._run[c] = cand, np.minimum(run, 1 << 20)
        self._held[c], self._miss[c] = held, np.minimum(miss, 1 << 20)
        hit = np.flatnonzero(onset >= 0)
        return [(int(c[i]), DTMF_KEYS[onset[i]]) for i in hit]


class ChannelDtmfDetector:
    """Single-channel DTMF decoding on top of :class:`DtmfDetector` (for tests and files)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, **options: float) -> None:
        self._det = DtmfDetector(sample_rate, **options)  # type: ignore[arg-type]
        self._ch = np.array([self._det.add_channel()], dtype=np.intp)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[str]:
        """Feed audio (int16 scale, any length); return the keys whose onset it completes."""
        data = np.asarray(samples, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, data)) if self._pending.size else data
        size = self._det.frame_size
        whole = len(buf) // size * size
        self._pending = buf[whole:].copy()
        keys: list[str] = []
        for start in range(0, whole, size):
            frame = buf[start : start + size].reshape(1, size)
            keys.extend(key for _, key in self._det.process(self._ch, frame))
        return keys

    def reset(self) -> None:
        """Forget buffered audio and key state."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._det.reset(int(self._ch[0]))
