"""Causal source-filter synthesis for streaming: the builtin vocoder's signal path, one frame at a time.

Each streaming frame k gives the harmonic and noise filters' log magnitudes (513 bins of a 1024-point FFT).
The segment of STREAM_HOP samples between frames k - 1 and k is excited by a band-limited pulse train whose
phase runs on from the previous segment (F0 interpolated linearly across the segment) and by white noise;
each excitation is filtered by the minimum-phase response of the two frames' mean log filter (linear
convolution by a zero-padded FFT), and the result is overlap-added into the output. An output sample depends
on excitation and filters up to itself only, so nothing waits for the future (the offline vocoder's centred
STFT looks 512 samples ahead); the gain of the pulse train and of the noise matches the offline vocoder's,
so filters distilled from it (``melisma.training.streaming``) keep their level.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from melisma.audio.constants import SAMPLE_RATE
from melisma.live.frontend import STREAM_HOP
from melisma.onnx.synthesis import DEFAULT_UNVOICED_HZ, LOG_MAG_MAX, minimum_phase_log

N_FFT = 1024  # the builtin vocoder's synthesis FFT: its filters have N_FFT // 2 + 1 bins
N_BINS = N_FFT // 2 + 1


class CausalSynth:
    """Stateful synthesiser: ``push(log_mag (K, 2 * N_BINS), f0 (K,) Hz, gain (K,))`` -> (K * STREAM_HOP,)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._phase = 0.0  # pulse-train phase in cycles, carried between segments
        self._f0 = DEFAULT_UNVOICED_HZ  # last F0 (held through unvoiced frames)
        self._voiced = 0.0
        self._gain = 0.0
        self._clog: np.ndarray | None = None  # the previous frame's log filters (4, N_BINS), see _frame_filters
        self._tail = np.zeros(N_FFT - STREAM_HOP, np.float64)

    def _frame_filters(self, log_mag: np.ndarray) -> np.ndarray:
        """(K, 2 * N_BINS) log magnitudes -> (K, 4, N_BINS): the complex log of the harmonic and of the noise
        filter's minimum-phase response, rows (log magnitude, phase) of each."""
        lm = np.minimum(log_mag.astype(np.float32), LOG_MAG_MAX)
        clog = minimum_phase_log(lm.reshape(-1, 2, N_BINS), N_FFT)  # (K, 2, N_BINS) complex
        return np.stack([clog.real, clog.imag], axis=2).reshape(lm.shape[0], 4, N_BINS)

    def _excitation(self, f0: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K,) F0 and gain -> pulse and noise excitation, each (K, STREAM_HOP), state carried."""
        k = f0.shape[0]
        voiced = (f0 > 0).astype(np.float64)
        held = np.empty(k)
        last = self._f0
        for i in range(k):  # hold the last voiced F0 through unvoiced frames (K is a handful per block)
            last = float(f0[i]) if f0[i] > 0 else last
            held[i] = last
        ramp = np.arange(1, STREAM_HOP + 1) / STREAM_HOP
        prev_f0 = np.concatenate([[self._f0], held[:-1]])
        prev_v = np.concatenate([[self._voiced], voiced[:-1]])
        prev_g = np.concatenate([[self._gain], gain[:-1]])
        f0_s = (prev_f0[:, None] + (held - prev_f0)[:, None] * ramp).reshape(-1)
        v_s = prev_v[:, None] + (voiced - prev_v)[:, None] * ramp
        g_s = prev_g[:, None] + (gain - prev_g)[:, None] * ramp
        phase_cycles = self._phase + np.cumsum(f0_s / SAMPLE_RATE)
        self._phase = float(np.remainder(phase_cycles[-1], 1.0))
        phase = np.remainder(phase_cycles, 1.0) * 2 * math.pi
        harmonics = np.maximum(np.floor(0.5 * SAMPLE_RATE / f0_s), 1.0)
        half = np.sin(0.5 * phase)
        small = np.abs(half) < 1e-4
        dirichlet = np.where(small, harmonics,
                             np.sin((harmonics + 0.5) * phase) / (2 * np.where(small, 1.0, half)) - 0.5)
        pulses = (dirichlet * 2.0 * np.sqrt(f0_s / SAMPLE_RATE)).reshape(k, STREAM_HOP) * v_s * g_s
        noise = self._rng.standard_normal((k, STREAM_HOP)) * g_s
        self._f0, self._voiced, self._gain = float(held[-1]), float(voiced[-1]), float(gain[-1])
        return pulses, noise

    def push(self, log_mag: np.ndarray, f0: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """Filters of K new frames, their F0 (Hz, 0 = unvoiced) and output gain (0..1) -> K * STREAM_HOP samples
        of audio, the segments that end at each frame's time."""
        k = f0.shape[0]
        if k == 0:
            return np.zeros(0, np.float32)
        filt = self._frame_filters(log_mag)
        prev = filt[:1] if self._clog is None else self._clog[None]
        mean = 0.5 * (np.concatenate([prev, filt[:-1]]) + filt)  # (K, 4, N_BINS) log filters of each segment
        self._clog = filt[-1]
        h_h = np.exp(mean[:, 0] + 1j * mean[:, 1])
        h_n = np.exp(mean[:, 2] + 1j * mean[:, 3])
        pulses, noise = self._excitation(np.asarray(f0, np.float64), np.asarray(gain, np.float64))
        spec = scipy.fft.rfft(pulses, n=N_FFT, axis=-1) * h_h + scipy.fft.rfft(noise, n=N_FFT, axis=-1) * h_n
        pieces = scipy.fft.irfft(spec, n=N_FFT, axis=-1)  # (K, N_FFT): each segment's filtered response
        out = np.zeros(k * STREAM_HOP + N_FFT - STREAM_HOP)
        out[: self._tail.shape[0]] += self._tail
        for i in range(k):
            out[i * STREAM_HOP : i * STREAM_HOP + N_FFT] += pieces[i]
        self._tail = out[k * STREAM_HOP :].copy()
        return np.clip(out[: k * STREAM_HOP], -1.0, 1.0).astype(np.float32)
