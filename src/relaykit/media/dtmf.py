"""In-band DTMF: a tone generator and a batch detector that serves many calls at once.

Generator
    :func:`generate_dtmf` renders keys as dual tones, each tone at ``level_dbfs`` (a full-scale
    sine is 0 dBFS), each followed by ``gap_ms`` of silence.

Detector
    :class:`DtmfDetector` takes one 20 ms frame per channel per tick and is vectorised over
    channels: a tick is two small matrix products and a few dozen numpy operations, whatever
    the number of channels (about 1 ms of one core for 1000 channels). Nothing is looped
    over channels or samples but the list of hits. :class:`ChannelDtmfDetector` wraps it
    for one stream of any chunking (tests, files). What it accepts and rejects, measured:
    docs/dtmf-receiver.md (``python -m benchmarks.dtmf_edges`` measures it again).

Method (a Goertzel-equivalent DFT at the DTMF frequencies)
    1. Each frame is cut into four 5 ms sub-blocks. One matrix product gives every sub-block's
       complex DFT at the 8 DTMF frequencies; its sample sum and energy come alongside.
    2. Analysis windows are 20 ms long at a 10 ms hop: two per frame, the first one using the
       last two sub-blocks of the previous frame (kept per channel, with their samples). A
       window's DFT is the sum of its four sub-block DFTs, phase-rotated (a second, per-tone
       matrix product). Rotating for ``f * (1 + d)`` with d in 0, ±0.75 %, ±1.5 %
       (gain-corrected for the sub-block approximation) and keeping the strongest gives a flat
       response over the ±1.5 % tolerance of ITU-T Q.24, while the 20 ms window keeps the
       50 Hz resolution needed between row tones 73 Hz apart. Two more rotations, at ±3 %,
       only check that the tone's spectral peak lies within about ±2.25 % of nominal.
    3. A window *has key K* when all of these hold (defaults in brackets); every threshold but
       the first is relative to the signal or to the line's noise:

       - the strongest row and column tone together are at least as strong as two tones at
         ``floor_dbfs`` (-40 dBFS per tone, a full-scale sine being 0 dBFS): a sensitivity
         limit 7 dB under the quietest keys that must be accepted (-33 dBFS per tone, 5 dB
         under the -25 dBm0 of the standards), so no key near that level sits on it;
       - they carry at least ``min_tone_ratio`` (0.8) of the window's AC power. This is what
         rejects speech, music and noise;
       - they stand ``noise_margin_db`` (10 dB) above the channel's noise floor: the power of
         the quietest 5 ms sub-block of recent frames without tone, taken from the first such
         frame, dropping at once to any quieter one and rising by at most ``noise_rise_db``
         (10 dB) a second;
       - each beats the runner-up of its group by ``group_margin_db`` (6 dB);
       - each of the window's four 5 ms sub-blocks carries at least ``min_block_share`` (0.5)
         of their mean AC energy, i.e. the tone fills the whole window (the duration test);
       - twist: the high-group (column) tone at most ``normal_twist_db`` (7 dB) above the
         low-group (row) tone and at most ``reverse_twist_db`` (9 dB) below it, so the -8/+4 dB
         window of Q.24's North American parameters is accepted and 10 dB either way is not;
       - the weaker tone carries twice the power of everything in the window besides the pair
         (what keeps a wide twist window from letting more speech through);
       - both tones peak within ~±2.25 % of their nominal frequency.

       With the two tones more than 3 dB apart, the stronger one's leakage through the 20 ms
       rectangular window (-25 dB) would blur the weaker one by up to ±1.5 dB, so those
       windows, few, are measured again through a Hann window on their samples (leakage under
       -50 dB) for the last three tests: twist is then decided to within 0.1 dB. A window
       that only continues the key its channel already holds skips those three tests.

    4. A key is reported on its onset, once ``confirm_windows`` (2) consecutive windows agree,
       and released after ``release_windows`` (5) consecutive windows without it.
       :meth:`DtmfDetector.in_tone` says which channels are in a key's tone, from its first
       window until its release: audio that is not speech.

Timing
    A window passes only if none of its 5 ms sub-blocks is (nearly) silent. Of two windows
    10 ms apart, a tone of 20 ms or less leaves at least 5 ms at one end of one of them
    silent, so it never gives the two consecutive passes a key needs, whatever its alignment
    to frame boundaries; a tone of 40 ms or more always covers two consecutive windows whole.
    In practice tones from about 25-35 ms up are accepted. A pause of 40 ms or more fails at
    least 5 windows in a row, so the same key pressed again after it counts twice; a dropout
    of 20 ms or less fails at most 4 and does not split a held key. Onsets are reported
    30-40 ms after the tone starts, releases 20-45 ms after it ends.

Limits
    A signal whose energy is almost all in one row and one column frequency for 30 ms is DTMF
    as far as any spectral detector can tell. Voiced speech can get there: a pitch near 239 Hz
    puts harmonics 4 and 5 at 956 and 1195 Hz, both within tolerance of "*" (941 + 1209 Hz),
    and some synthetic voices (espeak-ng's "belinda" variant) put almost all their energy in
    those two harmonics. Raising ``min_tone_ratio`` trades such talk-off for noise tolerance.
    Keys in white noise need about 10 dB of signal to noise (15 dB is accepted); keys
    that start a line's audio before any noise are judged without the noise floor until the
    first frame without tone. A detector is not thread-safe.
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

DTMF_KEYS = "123A456B789C*0#D"  # key index = 4 * row + column
ROW_FREQS: tuple[float, ...] = (697.0, 770.0, 852.0, 941.0)
COL_FREQS: tuple[float, ...] = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_FREQS: tuple[float, ...] = ROW_FREQS + COL_FREQS

_KEY_INDEX = {key: i for i, key in enumerate(DTMF_KEYS)}
_KEY_INDEX.update({key.lower(): i for key, i in _KEY_INDEX.items() if key.isalpha()})

_FULL_SCALE = 32768.0
_MAX_TONE_GAIN = 0.5  # two tones at half scale each peak at full scale

# Relative detunings at which each tone is measured: the strongest inner one is the tone's
# power; the outer probes only check that the tone's spectral peak is within about ±2.25 %.
_DETUNE_IN = (0.0, -0.0075, 0.0075, -0.015, 0.015)
_DETUNE_OUT = (-0.03, 0.03)
_DETUNE = _DETUNE_IN + _DETUNE_OUT
_N_IN = len(_DETUNE_IN)
_N_DET = len(_DETUNE)

_TWIST_EVEN = 10.0 ** (3.0 / 10.0)  # tones further apart than this are measured again, finely
_WEAK_OVER_REST = 10.0 ** (3.0 / 10.0)  # weaker tone's power over the rest of the window's
_NOISE_TONE_SHARE = 0.2  # a window whose best pair has this share of its power is not noise
_NOISE_UNSET = -1.0  # noise floor of a channel that has not had a window without tone yet
_NOISE_MIN = 1.0  # lowest noise floor: AC power on the int16 scale (-90 dBFS)


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
    twist_db: float = 0.0,
) -> np.ndarray:
    """Render ``digits`` as int16 DTMF: per key ``tone_ms`` of dual tone, then ``gap_ms`` silence.

    Keys are ``0-9 * # A-D`` (``a-d`` accepted). Each of the two tones is at ``level_dbfs`` (a
    full-scale sine is 0 dBFS), or with ``twist_db`` the low-group tone is and the high-group
    tone is ``twist_db`` above it (negative: below). The pair must never clip: at no twist each
    tone is at most -6.02 dBFS.
    """
    keys = _parse_keys(digits)
    if not sample_rate > 2 * max(DTMF_FREQS):
        raise ValueError(f"sample_rate must be above {2 * max(DTMF_FREQS):g} Hz, got {sample_rate}")
    if not tone_ms >= 1:
        raise ValueError(f"tone_ms must be at least 1, got {tone_ms}")
    if not gap_ms >= 0:
        raise ValueError(f"gap_ms must be non-negative, got {gap_ms}")
    if not math.isfinite(twist_db):
        raise ValueError(f"twist_db must be a finite number, got {twist_db}")
    gain = 10.0 ** (level_dbfs / 20.0) if math.isfinite(level_dbfs) else math.nan
    high_gain = gain * 10.0 ** (twist_db / 20.0)
    if not gain + high_gain <= 2 * _MAX_TONE_GAIN:
        raise ValueError(
            f"level_dbfs {level_dbfs} with twist_db {twist_db} would clip: the two tones' "
            "amplitudes must add up to full scale at most"
        )

    n_tone = round(tone_ms * sample_rate / 1000)
    n_gap = round(gap_ms * sample_rate / 1000)
    t = np.arange(n_tone) * (2 * np.pi / sample_rate)
    low, high = 32767.0 * gain, 32767.0 * high_gain
    out = np.zeros(len(keys) * (n_tone + n_gap), dtype=np.int16)
    for i, k in enumerate(keys):
        tone = low * np.sin(ROW_FREQS[k // 4] * t) + high * np.sin(COL_FREQS[k % 4] * t)
        start = i * (n_tone + n_gap)
        out[start : start + n_tone] = np.round(tone).astype(np.int16)
    return out


class DtmfDetector:
    """Batch DTMF detector: many independent channels, one 20 ms frame per channel per call.

    Get channel ids from :meth:`add_channel`, then call :meth:`process` every tick with the ids
    and their next frames. Per-channel state lives in numpy arrays indexed by channel id.
    Thresholds are keyword arguments; see the module docstring for what each one does.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        *,
        floor_dbfs: float = -40.0,
        noise_margin_db: float = 10.0,
        noise_rise_db: float = 10.0,
        min_tone_ratio: float = 0.8,
        group_margin_db: float = 6.0,
        normal_twist_db: float = 7.0,
        reverse_twist_db: float = 9.0,
        min_block_share: float = 0.5,
        confirm_windows: int = 2,
        release_windows: int = 5,
    ) -> None:
        if sample_rate % 200 or sample_rate <= 2 * max(DTMF_FREQS):
            raise ValueError(
                f"sample_rate must be a multiple of 200 Hz above 3266, got {sample_rate}"
            )
        if confirm_windows < 1 or release_windows < 1:
            raise ValueError("confirm_windows and release_windows must be at least 1")
        self.sample_rate = sample_rate
        self.frame_size = round(sample_rate * FRAME_SECONDS)  # samples per process() frame
        self._block = self.frame_size // 4  # 5 ms sub-block
        self._win = 4 * self._block  # 20 ms analysis window

        # Levels are compared as squared amplitudes (a sine's power is amplitude^2 / 2); the
        # floor is on the pair: r^2 + c^2 at least that of two tones at floor_dbfs each.
        self._floor = 2.0 * (_FULL_SCALE * 10.0 ** (floor_dbfs / 20.0)) ** 2
        self._noise_margin = 2.0 * 10.0 ** (noise_margin_db / 10.0)  # noise power -> r^2 + c^2
        self._noise_rise = 10.0 ** (noise_rise_db * FRAME_SECONDS / 10.0)  # per frame
        self._min_ratio = float(min_tone_ratio)
        self._margin = 10.0 ** (group_margin_db / 10.0)
        self._normal = 10.0 ** (normal_twist_db / 10.0)
        self._reverse = 10.0 ** (reverse_twist_db / 10.0)
        self._block_share = float(min_block_share)
        self._confirm = int(confirm_windows)
        self._release = int(release_windows)
        self._basis, self._combine = self._build_bases()
        self._fine = self._build_fine_basis()
        # OpenBLAS threads a product once m*n*k reaches 4 * 65536. Threads gain nothing on
        # products this small and, on a busy machine, stall a tick for whole scheduler slices
        # (8 ms instead of 0.2 ms for 1000 channels), so the products are cut below that.
        self._gemm_rows = (4 * 65536 - 1) // (16 * self._block)
        self._gemm_channels = (4 * 65536 - 1) // (self._combine.shape[1] * 12)

        # Per-channel state, grown by doubling.
        self._cap = 0
        self._next_id = 0
        self._free: list[int] = []
        self._in_use = np.zeros(0, dtype=bool)
        # The last 2 sub-blocks of the previous frame: DFTs, and (sum, energy) pairs.
        self._hist_dft = np.zeros((0, 2, 8, 2), dtype=np.float32)
        self._hist_se = np.zeros((0, 2, 2), dtype=np.float32)
        self._hist_x = np.zeros((0, self._win // 2), dtype=np.float32)  # and its samples
        self._cand = np.zeros(0, dtype=np.int8)  # key of the current run of windows, -1 none
        self._run = np.zeros(0, dtype=np.int32)  # length of that run
        self._held = np.zeros(0, dtype=np.int8)  # confirmed key still down, -1 none
        self._miss = np.zeros(0, dtype=np.int32)  # consecutive windows without the held key
        self._noise = np.zeros(0, dtype=np.float32)  # tracked noise floor (AC power)
        self._hist_zero = np.zeros(0, dtype=bool)  # the kept half frame is digital silence
        self._buffers: dict[str, np.ndarray] = {}

    def _build_bases(self) -> tuple[np.ndarray, np.ndarray]:
        b = self._block
        w = 2 * np.pi * np.asarray(DTMF_FREQS) / self.sample_rate
        # Sub-block DFT: re/im per tone (16 columns; a 17th would cost a whole GEMM panel).
        basis = np.zeros((b, 16))
        phase = np.outer(np.arange(b), w)
        basis[:, 0::2] = np.cos(phase)
        basis[:, 1::2] = -np.sin(phase)

        # Per tone: 6 sub-block DFTs (block, re/im) -> (out re/im, detuning, window). Window
        # `win` at detuned frequency w' is X = sum_i Y[2 win + i] * exp(-j w' b i).
        combine = np.zeros((8, 2, _N_DET, 2, 6, 2))
        for j in range(8):
            for d, rel in enumerate(_DETUNE):
                wd = w[j] * (1.0 + rel)
                # Sub-block DFTs are taken at w, not wd: undo their known loss for a tone at wd,
                # so that every detuning measures a pure tone at its full amplitude.
                half = (wd - w[j]) / 2
                gain = abs(math.sin(half * b) / (b * math.sin(half))) if half else 1.0
                for i in range(4):
                    c, s = math.cos(wd * b * i) / gain, -math.sin(wd * b * i) / gain
                    for win in range(2):  # (y_re + j y_im)(c + j s)
                        combine[j, 0, d, win, 2 * win + i] = (c, -s)
                        combine[j, 1, d, win, 2 * win + i] = (s, c)
        combine *= 2.0 / self._win  # |X|^2 is then the squared amplitude of a sine
        return (
            basis.astype(np.float32),
            combine.reshape(8, 2 * _N_DET * 2, 12).astype(np.float32),
        )

    def _build_fine_basis(self) -> np.ndarray:
        """Hann-windowed DFT basis per tone: (8, win, detuning * re/im).

        A Hann window keeps a tone's leakage into the other group's tone under -50 dB (the
        rectangular window: -25 dB), so the twist it measures is within 0.1 dB.
        """
        n = np.arange(self._win)
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / self._win)
        cols = np.zeros((8, self._win, _N_DET, 2))
        for j, f in enumerate(DTMF_FREQS):
            for d, rel in enumerate(_DETUNE):
                phase = 2 * np.pi * f * (1.0 + rel) / self.sample_rate * n
                cols[j, :, d, 0] = np.cos(phase) * hann
                cols[j, :, d, 1] = -np.sin(phase) * hann
        cols *= 2.0 / hann.sum()  # |X|^2 is then the squared amplitude of a sine
        return cols.reshape(8, self._win, 2 * _N_DET).astype(np.float32)

    # -- channels ---------------------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = max(16, self._cap)
        while cap < need:
            cap *= 2
        if cap == self._cap:
            return

        def grown(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._in_use = grown(self._in_use, False)
        self._hist_dft = grown(self._hist_dft, 0.0)
        self._hist_se = grown(self._hist_se, 0.0)
        self._hist_x = grown(self._hist_x, 0.0)
        self._cand = grown(self._cand, -1)
        self._run = grown(self._run, 0)
        self._held = grown(self._held, -1)
        self._miss = grown(self._miss, 0)
        self._noise = grown(self._noise, _NOISE_UNSET)
        self._hist_zero = grown(self._hist_zero, True)
        self._cap = cap

    def add_channel(self) -> int:
        """Allocate a channel and return its id; freed ids are reused, lowest first."""
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
        """Free channel ``ch``; :meth:`add_channel` may hand its id out again."""
        self.reset(ch)
        self._in_use[ch] = False
        self._free.append(ch)

    def reset(self, ch: int) -> None:
        """Forget channel ``ch``'s audio history and key state."""
        if not (0 <= ch < self._next_id and self._in_use[ch]):
            raise KeyError(f"no such DTMF channel: {ch}")
        self._hist_dft[ch] = 0.0
        self._hist_se[ch] = 0.0
        self._hist_x[ch] = 0.0
        self._cand[ch] = -1
        self._run[ch] = 0
        self._held[ch] = -1
        self._miss[ch] = 0
        self._noise[ch] = _NOISE_UNSET
        self._hist_zero[ch] = True

    @property
    def channel_count(self) -> int:
        """Number of channels currently allocated."""
        return self._next_id - len(self._free)

    # -- detection --------------------------------------------------------------------------

    def process(self, channels: np.ndarray, frames: np.ndarray) -> list[tuple[int, str]]:
        """Feed the next frame of each listed channel; return ``(channel, key)`` for each onset.

        ``channels`` holds k distinct channel ids, ``frames`` is (k, frame_size) audio on the
        int16 scale (int16 or float). Hits come in the order of ``channels``.
        """
        ch = np.asarray(channels, dtype=np.intp)
        x = np.asarray(frames)
        k = ch.shape[0] if ch.ndim == 1 else -1
        if x.shape != (k, self.frame_size):
            raise ValueError(
                f"expected channels (k,) and frames (k, {self.frame_size}), "
                f"got {ch.shape} and {x.shape}"
            )
        if k == 0:
            return []
        if ch.min() < 0 or ch.max() >= self._next_id or not self._in_use[ch].all():
            raise KeyError("process() got a DTMF channel id that is not allocated")
        # Both windows of a channel whose frame and kept half frame are all zeros are digital
        # silence: no key, and a noise floor at its minimum, exactly what the analysis would
        # find. Only the other channels are analysed (a silent line costs next to nothing).
        nonzero = self._nonzero(x)  # (k, words): a word of samples is not all zeros
        zero = ~nonzero.any(axis=1)
        silent = zero & self._hist_zero[ch]
        self._hist_zero[ch] = ~nonzero[:, nonzero.shape[1] // 2 :].any(axis=1)
        if not silent.any():
            return self._update(ch, self._window_keys(ch, x))
        self._noise[ch[silent]] = _NOISE_MIN
        sound = np.flatnonzero(~silent)
        keys = np.full((2, k), -1, dtype=np.int8)
        if sound.size:
            found = self._window_keys(ch[sound], x[sound])
            if found is not None:
                keys[:, sound] = found
        return self._update(ch, keys)

    @staticmethod
    def _nonzero(x: np.ndarray) -> np.ndarray:
        """Which words of each row of ``x`` hold a sample that is not zero: (k, words), a
        word being four int16 samples (or one sample of another type)."""
        words = x
        if x.dtype == np.int16 and x.flags.c_contiguous and x.shape[1] % 8 == 0:
            words = x.view(np.uint64)  # (halves of a frame stay whole words)
        nonzero: np.ndarray = words != 0
        return nonzero

    def in_tone(self, channels: np.ndarray) -> np.ndarray:
        """Whether each channel's last frame was part of a key's tone, as a bool array.

        True from the first window that looks like a key (before it is confirmed) until the
        key's release, ``release_windows`` windows after its tone ended: audio that a voice
        detector must not take for speech.
        """
        ch = np.asarray(channels, dtype=np.intp)
        return (self._held[ch] >= 0) | (self._cand[ch] >= 0)

    def _scratch(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A reusable float32 work array: fresh large arrays every tick cost page faults."""
        n = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < n:
            buf = self._buffers[name] = np.empty(n, dtype=np.float32)
        return buf[:n].reshape(shape)

    def _measure(self, ch: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Analyse the frame's 2 windows per channel; updates the sub-block history.

        Returns squared tone amplitudes (8, 2, k), "peak near nominal" flags (8, 2, k),
        window AC power (2, k), the smallest sub-block AC energy per window (2, k) and the
        frames as float32 (k, frame_size).
        """
        k, b = x.shape[0], self._block
        xf = self._scratch("x", (4 * k, b))
        np.copyto(xf.reshape(k, 4 * b), x, casting="unsafe")
        # The frame's 4 sub-blocks: DFT at the 8 tones, sample sum, energy.
        dft = self._scratch("dft", (k, 4, 8, 2))
        flat = dft.reshape(4 * k, 16)
        step = self._gemm_rows
        for i in range(0, 4 * k, step):
            np.matmul(xf[i : i + step], self._basis, out=flat[i : i + step])
        se = self._scratch("se", (2, 6, k))  # sums and energies of 2 kept + 4 new sub-blocks
        se[0, 2:] = np.einsum("kn->k", xf).reshape(k, 4).T  # einsum: no BLAS threads
        se[1, 2:] = np.einsum("kn,kn->k", xf, xf).reshape(k, 4).T
        se[:, :2] = self._hist_se[ch].transpose(2, 1, 0)

        # Window DFTs, one small product per tone, channels last: (8, 12, k) -> (8, 28, k).
        zt = self._scratch("zt", (8, 6, 2, k))
        np.copyto(zt[:, :2], self._hist_dft[ch].transpose(2, 1, 3, 0))
        np.copyto(zt[:, 2:], dft.transpose(2, 1, 3, 0))
        self._hist_dft[ch] = dft[:, 2:]
        self._hist_se[ch] = se[:, 4:].transpose(2, 1, 0)
        zt = zt.reshape(8, 12, k)
        wx = self._scratch("wx", (8, 2 * _N_DET * 2, k))
        step = self._gemm_channels
        for i in range(0, k, step):
            np.matmul(self._combine, zt[:, :, i : i + step], out=wx[:, :, i : i + step])
        np.square(wx, out=wx)
        wx = wx.reshape(8, 2, _N_DET, 2, k)
        power = self._scratch("power", (8, _N_DET, 2, k))
        np.add(wx[:, 0], wx[:, 1], out=power)  # squared amplitude per detuning and window
        amp2 = power[:, :_N_IN].max(axis=1)
        centred = amp2 >= power[:, _N_IN:].max(axis=1)

        # AC power per window and AC energy per sub-block (a DC offset is not signal).
        s, e = se
        block_ac = e - s * s / b
        w_s = s[0:4:2] + s[1:5:2] + s[2:6:2] + s[3:7:2]  # (2, k): blocks 0-3 and 2-5
        w_e = e[0:4:2] + e[1:5:2] + e[2:6:2] + e[3:7:2]
        w_power = (w_e - w_s * w_s / self._win) / self._win
        b_min = np.minimum(
            np.minimum(block_ac[0:4:2], block_ac[1:5:2]),
            np.minimum(block_ac[2:6:2], block_ac[3:7:2]),
        )
        return amp2, centred, w_power, b_min, xf.reshape(k, 4 * b)

    def _window_keys(self, ch: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """Key index, or -1, of the frame's 2 windows per channel: (2, k) int8; None if no key.

        Also advances each channel's noise floor and sample history over the frame.
        """
        amp2, centred, w_power, b_min, xk = self._measure(ch, x)
        try:
            return self._judge(ch, amp2, centred, w_power, b_min, xk)
        finally:
            self._hist_x[ch] = xk[:, self._win // 2 :]

    def _judge(
        self,
        ch: np.ndarray,
        amp2: np.ndarray,
        centred: np.ndarray,
        w_power: np.ndarray,
        b_min: np.ndarray,
        xk: np.ndarray,
    ) -> np.ndarray | None:
        """The tests of step 3 (module docstring) on the measures of :meth:`_measure`."""
        r1, c1 = amp2[:4].max(axis=0), amp2[4:].max(axis=0)
        pair = r1 + c1  # (2, k): squared amplitudes, twice the pair's power
        # Level and energy ratio first: they fail for nearly every window of speech, noise or
        # silence, so the other tests only run on the few candidates left.
        tonal = pair * 0.5 >= self._min_ratio * w_power
        noise = self._noise[ch]
        ok = tonal & (pair >= np.maximum(self._floor, self._noise_margin * noise))
        # The noise floor is the power of the quietest 5 ms sub-block of frames without tone:
        # it starts at the first such frame's, drops at once to any quieter one and rises by at
        # most noise_rise_db a second. A frame where a DTMF pair has a fifth of a window's
        # power (a tone, its start or end, or one too weak for a key) is not noise.
        has_tone = pair * (0.5 / _NOISE_TONE_SHARE) > w_power  # not silence: 0 > 0
        quiet = np.where(has_tone.any(axis=0), np.inf, b_min[1] * (1.0 / self._block))
        rise = np.where(noise < 0.0, np.inf, noise * self._noise_rise)  # unset: take quiet
        self._noise[ch] = np.where(
            quiet < np.inf, np.maximum(np.minimum(quiet, rise), _NOISE_MIN), noise
        )
        cand = np.flatnonzero(ok)  # into the flattened (2, k) window axis
        if not cand.size:
            return None

        amp2 = amp2.reshape(8, -1)[:, cand]
        centred = centred.reshape(8, -1)[:, cand]
        rows, cols = amp2[:4], amp2[4:]
        r1, c1 = r1.reshape(-1)[cand], c1.reshape(-1)[cand]
        w_pow, b_min = w_power.reshape(-1)[cand], b_min.reshape(-1)[cand]
        ri, ci = rows.argmax(axis=0), cols.argmax(axis=0)
        r2 = np.where(rows >= r1, 0.0, rows).max(axis=0)  # runner-up in each group
        c2 = np.where(cols >= c1, 0.0, cols).max(axis=0)
        ok = (r1 >= self._margin * r2) & (c1 >= self._margin * c2)
        ok &= b_min * 4.0 >= self._block_share * self._win * w_pow  # tone fills the window
        # With the tones within _TWIST_EVEN of each other, the window's own measure serves.
        # Further apart, the stronger tone's leakage (-25 dB) blurs the weaker one: measure
        # both again through a Hann window (leakage under -50 dB), unless the window only
        # continues the key its channel holds. Far beyond a twist limit, don't bother.
        key = (ri * 4 + ci).astype(np.int8)
        even = (c1 <= _TWIST_EVEN * r1) & (r1 <= _TWIST_EVEN * c1)
        ok &= (c1 <= self._normal * r1 * _TWIST_EVEN) & (r1 <= self._reverse * c1 * _TWIST_EVEN)
        held = self._held[ch[cand % len(ch)]] == key
        fine = ok & ~even & ~held
        strict = ~(ok & ~even & held)  # a held key goes on without the tests below
        if fine.any():
            f = np.flatnonzero(fine)
            r1[f], c1[f], centred_f = self._fine_pair(ch, cand[f], ri[f], ci[f], xk)
            ok[f] = centred_f
        pick = np.arange(cand.size)
        test = (c1 <= self._normal * r1) & (r1 <= self._reverse * c1)
        test &= fine | (centred[ri, pick] & centred[4 + ci, pick])
        # The weaker tone stands above everything in the window that is not the pair.
        test &= np.minimum(r1, c1) * 0.5 >= _WEAK_OVER_REST * (w_pow - (r1 + c1) * 0.5)
        ok &= test | ~strict

        keys = np.full(w_power.size, -1, dtype=np.int8)
        keys[cand[ok]] = key[ok]
        return keys.reshape(w_power.shape)

    def _fine_pair(
        self,
        ch: np.ndarray,
        windows: np.ndarray,
        ri: np.ndarray,
        ci: np.ndarray,
        xk: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row ``ri`` and column ``ci`` in the given windows (indices into the flattened (2, k)
        window axis) through a Hann window: their squared amplitudes, each at its best inner
        detuning, and whether both peak near nominal."""
        k, half = xk.shape[0], self._win // 2
        win, pos = np.divmod(windows, k)
        samples = np.empty((len(windows), self._win), dtype=np.float32)
        first = win == 0  # the frame's first window starts in the previous frame
        samples[first, :half] = self._hist_x[ch[pos[first]]]
        samples[first, half:] = xk[pos[first], :half]
        samples[~first] = xk[pos[~first]]
        amps = []
        centred = np.ones(len(windows), dtype=bool)
        for tones in (ri, 4 + ci):
            power = np.empty((len(windows), _N_DET), dtype=np.float32)
            for tone in np.unique(tones):  # one product per tone that occurs
                rows = np.flatnonzero(tones == tone)
                re_im = samples[rows] @ self._fine[tone]  # (m, _N_DET * 2)
                np.square(re_im, out=re_im)
                power[rows] = re_im[:, 0::2] + re_im[:, 1::2]
            amps.append(power[:, :_N_IN].max(axis=1))
            centred &= amps[-1] >= power[:, _N_IN:].max(axis=1)
        return amps[0], amps[1], centred

    def _update(self, ch: np.ndarray, keys: np.ndarray | None) -> list[tuple[int, str]]:
        """Advance each channel's run/hold state over the frame's windows; collect onsets."""
        # Only channels that saw a key now or have a run or key in progress need the loop.
        busy = (self._cand[ch] >= 0) | (self._held[ch] >= 0)
        if keys is None:
            if not busy.any():
                return []
            keys = np.full((2, len(ch)), -1, dtype=np.int8)
        else:
            busy |= (keys >= 0).any(axis=0)
        idx = np.flatnonzero(busy)
        c, keys = ch[idx], keys[:, idx]
        cand, run, held, miss = self._cand[c], self._run[c], self._held[c], self._miss[c]
        onset = np.full(len(c), -1, dtype=np.int8)
        for d in keys:  # one window at a time, all channels at once
            run = np.where(d == cand, run + 1, 1)
            cand = d
            seen = d == held
            miss = np.where(seen, 0, miss + 1)
            held = np.where(miss >= self._release, -1, held)
            new = (d >= 0) & (run >= self._confirm) & ~seen
            if new.any():
                onset = np.where(new, d, onset)
                held = np.where(new, d, held)
                miss = np.where(new, 0, miss)
        cap = 1 << 20  # counters only matter up to the thresholds; keep them bounded
        self._cand[c], self._run[c] = cand, np.minimum(run, cap)
        self._held[c], self._miss[c] = held, np.minimum(miss, cap)
        hit = np.flatnonzero(onset >= 0)
        return [(int(c[i]), DTMF_KEYS[onset[i]]) for i in hit]


class ChannelDtmfDetector:
    """One stream of audio, any chunking, decoded by a one-channel :class:`DtmfDetector`.

    Keyword options are passed to :class:`DtmfDetector`.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, **options: float) -> None:
        self.detector = DtmfDetector(sample_rate, **options)  # type: ignore[arg-type]
        self._ch = np.array([self.detector.add_channel()], dtype=np.intp)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[str]:
        """Feed audio (int16 scale, any length); return the keys whose onsets it completes."""
        data = np.asarray(samples, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, data)) if self._pending.size else data
        size = self.detector.frame_size
        whole = len(buf) // size * size
        self._pending = buf[whole:].copy()
        keys: list[str] = []
        for start in range(0, whole, size):
            frame = buf[start : start + size].reshape(1, size)
            keys.extend(key for _, key in self.detector.process(self._ch, frame))
        return keys

    def reset(self) -> None:
        """Forget buffered audio and key state."""
        self._pending = np.zeros(0, dtype=np.float32)
        self.detector.reset(int(self._ch[0]))
