"""Causal analysis for streaming: log-mel, loudness and F0 of windows that end at the current sample.

Frame k (k = 1, 2, ...) is computed once k * STREAM_HOP samples have arrived, from the WINDOW samples before
that point (the stream starts from silence: samples before 0 are zeros). Its centre, the input time it
describes, is ``frame_time(k) = k * STREAM_HOP - WINDOW // 2``. ``analyse(audio)`` gives every frame of a whole
clip at once (what training uses); ``FrontEnd.push`` gives the same numbers block by block (what the engine
uses): tests/test_streaming.py checks they agree.

Pitch is YIN (de Cheveigné & Kawahara 2002) on the last ``PITCH_WINDOW`` samples: the cumulative mean
normalised difference of the newest WINDOW samples against lags up to 1/F0_MIN, its first dip under a
threshold, refined by a parabola. It needs no look-ahead beyond the window, which is what a live tracker
must do; the offline trackers of ``melisma.features.pitch`` (and the judge of ``evaluate``) are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from melisma.audio.constants import N_FFT, SAMPLE_RATE
from melisma.features.mel import LOG_FLOOR, hann_window_np, mel_basis_np

STREAM_HOP = 256  # samples between streaming frames (5.8 ms)
WINDOW = 1024  # analysis window of the log-mel and loudness (23 ms): half of it is the look-ahead of a frame
PITCH_WINDOW = 2048  # samples YIN looks at: WINDOW newest samples compared with lags up to LAG_MAX
YIN_F0_MIN, YIN_F0_MAX = 60.0, 1000.0  # Hz
LAG_MIN, LAG_MAX = int(SAMPLE_RATE / YIN_F0_MAX), int(SAMPLE_RATE / YIN_F0_MIN)  # 44 .. 735 samples
YIN_THRESHOLD = 0.15  # first dip of the normalised difference under this is the period
YIN_UNVOICED = 0.3  # no dip under this: unvoiced
SILENCE_DB = -100.0
PITCH_GATE_DB = -60.0  # windows quieter than this are unvoiced whatever YIN says


def frame_time(k: np.ndarray | int) -> np.ndarray | int:
    """Input sample a streaming frame k describes (the centre of its window)."""
    return k * STREAM_HOP - WINDOW // 2


@dataclass(frozen=True)
class Frames:
    """Streaming features of K frames: ``mel`` (K, 128) natural-log mel, ``loudness`` (K,) dBFS RMS of the
    window, ``f0`` (K,) Hz (0 = unvoiced), ``periodicity`` (K,) 1 - YIN's dip (0..1)."""

    mel: np.ndarray
    loudness: np.ndarray
    f0: np.ndarray
    periodicity: np.ndarray

    def __len__(self) -> int:
        return int(self.f0.shape[0])


def _windows(signal: np.ndarray, ends: np.ndarray, size: int) -> np.ndarray:
    """(n,) signal already padded with ``PITCH_WINDOW`` leading zeros, (K,) end indices in the unpadded signal ->
    (K, size) the ``size`` samples before each end."""
    view = np.lib.stride_tricks.sliding_window_view(signal, size)
    return view[ends + PITCH_WINDOW - size]


def _mel_and_loudness(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, WINDOW) float32 -> (K, 128) log-mel (Hann window, zero-padded to N_FFT, the project's filterbank) and
    (K,) RMS dBFS."""
    spec = np.abs(scipy.fft.rfft(windows * hann_window_np(WINDOW), n=N_FFT, axis=-1))
    mel = np.log(np.maximum(spec @ mel_basis_np().T, np.float32(LOG_FLOOR)))
    power = np.mean(windows.astype(np.float64) ** 2, axis=-1)
    loud = np.maximum(10.0 * np.log10(np.maximum(power, 1e-20)), SILENCE_DB)
    return mel.astype(np.float32), loud.astype(np.float32)


def _yin(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, PITCH_WINDOW) -> (K,) F0 Hz (0 = no period found) and (K,) periodicity 1 - d'(lag)."""
    x = windows.astype(np.float64)
    k = x.shape[0]
    if k == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    frame = x[:, -WINDOW:]  # the newest WINDOW samples
    # r[tau] = sum_j frame[j] * x[PITCH_WINDOW - WINDOW + j - tau], tau = 0 .. LAG_MAX (zero-padded to 4096:
    # padding in the call itself is many times slower than padding here)
    padded = np.zeros((k, 2, 4096))
    padded[:, 0, :PITCH_WINDOW] = x
    padded[:, 1, :WINDOW] = frame
    spec = scipy.fft.rfft(padded, axis=-1)
    corr = scipy.fft.irfft(spec[:, 0] * np.conj(spec[:, 1]), axis=-1)
    offset = PITCH_WINDOW - WINDOW
    taus = np.arange(LAG_MAX + 2)
    cross = corr[:, offset - taus]
    csum = np.concatenate([np.zeros((k, 1)), np.cumsum(x**2, axis=-1)], axis=-1)
    starts = offset - taus
    energy_lag = csum[:, starts + WINDOW] - csum[:, starts]  # sum of the lagged window's squares
    energy0 = energy_lag[:, :1]
    diff = np.maximum(energy0 + energy_lag - 2.0 * cross, 0.0)  # (K, LAG_MAX + 2)
    cum = np.cumsum(diff[:, 1:], axis=-1)
    norm = np.ones_like(diff)
    norm[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    d = norm[:, LAG_MIN - 1 : LAG_MAX + 2]  # lags LAG_MIN - 1 .. LAG_MAX + 1
    inner = d[:, 1:-1]
    dips = (inner < d[:, :-2]) & (inner <= d[:, 2:]) & (inner < YIN_THRESHOLD)
    first = np.where(dips.any(-1), dips.argmax(-1), inner.argmin(-1))
    rows = np.arange(k)
    best = inner[rows, first]
    a, b, c = d[rows, first], inner[rows, first], d[rows, first + 2]
    denom = a - 2.0 * b + c
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1.0, denom), 0.0)
    lag = LAG_MIN + first + np.clip(shift, -1.0, 1.0)
    f0 = np.where(best < YIN_UNVOICED, SAMPLE_RATE / lag, 0.0)
    return f0.astype(np.float32), np.clip(1.0 - best, 0.0, 1.0).astype(np.float32)


def _frames_from(padded: np.ndarray, ends: np.ndarray, batch: int = 128) -> Frames:
    """Frames ending at ``ends`` (unpadded sample indices) of a signal padded with PITCH_WINDOW leading zeros,
    ``batch`` frames at a time (the FFTs of a whole clip at once are slower: they leave the cache)."""
    parts = []
    for i in range(0, max(len(ends), 1), batch):
        e = ends[i : i + batch]
        mel, loud = _mel_and_loudness(_windows(padded, e, WINDOW).astype(np.float32))
        f0, periodicity = _yin(_windows(padded, e, PITCH_WINDOW))
        parts.append((mel, loud, np.where(loud > PITCH_GATE_DB, f0, 0.0).astype(np.float32), periodicity))
    return Frames(*(np.concatenate(p) for p in zip(*parts, strict=True)))


def analyse(audio: np.ndarray) -> Frames:
    """(n,) float waveform at 44.1 kHz -> Frames of frames 1 .. n // STREAM_HOP (row i is frame i + 1)."""
    x = np.asarray(audio, dtype=np.float32)
    ends = np.arange(1, x.shape[0] // STREAM_HOP + 1) * STREAM_HOP
    return _frames_from(np.concatenate([np.zeros(PITCH_WINDOW, np.float32), x]), ends)


class FrontEnd:
    """Stateful ``analyse``: ``push(block)`` -> Frames of every frame completed by this block (maybe none)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(PITCH_WINDOW, np.float32)  # the last PITCH_WINDOW samples + those not yet framed
        self._pending = 0  # samples in _buf after the last completed frame

    def push(self, block: np.ndarray) -> Frames:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, x])
        total = self._pending + x.shape[0]
        count = total // STREAM_HOP
        # ends relative to the first sample after the PITCH_WINDOW history: the history is the padding
        base = self._buf.shape[0] - PITCH_WINDOW - total
        ends = base + np.arange(1, count + 1) * STREAM_HOP
        frames = _frames_from(self._buf, ends)
        self._pending = total - count * STREAM_HOP
        self._buf = self._buf[-(PITCH_WINDOW + self._pending):]
        return frames
