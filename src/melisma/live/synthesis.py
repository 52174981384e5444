"""Causal source-filter synthesis for streaming: the builtin vocoder's signal path, one frame at a time.

Each streaming frame k gives the harmonic and noise filters' log magnitudes (513 bins of a 1024-point FFT).
The segment of STREAM_HOP samples between frames k - 1 and k is excited by a band-limited pulse train whose
phase runs on from the previous segment (F0 interpolated linearly across the segment) and by white noise.
The excitation up to the segment's end is filtered (a CONV_FFT-point FFT convolution over the last CEP_FFT +
STREAM_HOP samples) by frame k - 1's and by frame k's minimum-phase responses, and the segment is the linear
crossfade of the two: a filter that changes smoothly from frame to frame. (Filtering each segment alone and
overlap-adding the pieces would switch filters abruptly at every segment edge, and that leaks broadband
energy into the quiet bands.) An output sample depends on excitation and filters up to itself only, so nothing waits for the future (the offline vocoder's centred
STFT looks 512 samples ahead); the gain of the pulse train and of the noise (``NOISE_GAIN``) matches the offline vocoder's,
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
CEP_FFT = 2 * N_FFT  # minimum-phase responses from a cepstrum this long (the filters' bins interpolated)
CONV_FFT = 2 * CEP_FFT  # excitation window (CEP_FFT + STREAM_HOP) convolved with a CEP_FFT-sample response
# A linear convolution has the response between the filters' bins too, which the offline STFT never sees: with
# an N_FFT-point cepstrum the responses' tails wrap round and leak 30 dB of energy into bands the filter
# silences; a cepstrum twice as long, and the response's last quarter faded out, keep them silent.
IR_TAPER = np.concatenate([np.ones(3 * CEP_FFT // 4),
                           np.hanning(CEP_FFT // 2 + 2)[CEP_FFT // 4 + 1 : -1]]).astype(np.float32)
NOISE_GAIN = 0.5  # the offline vocoder's noise: its random STFT frames overlap-add at 1/4 of unit power


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
        self._last: np.ndarray | None = None  # the previous frame's responses (1, 2, CONV_FFT // 2 + 1)
        self._history = np.zeros((2, CEP_FFT), np.float32)  # the last CEP_FFT samples of pulse and noise excitation

    def _frame_filters(self, log_mag: np.ndarray) -> np.ndarray:
        """(K, 2 * N_BINS) log magnitudes -> (K, 2, CEP_FFT // 2 + 1) complex64: the complex log of the harmonic
        and of the noise filter's minimum-phase response."""
        lm = np.minimum(log_mag.astype(np.float32), LOG_MAG_MAX).reshape(-1, 2, N_BINS)
        fine = np.empty((lm.shape[0], 2, CEP_FFT // 2 + 1), np.float32)  # bins interpolated halfway
        fine[..., ::2] = lm
        fine[..., 1::2] = 0.5 * (lm[..., :-1] + lm[..., 1:])
        return minimum_phase_log(fine, CEP_FFT)  # (K, 2, CEP_FFT // 2 + 1) complex64

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
        # (K, 2, bins): each frame's harmonic and noise responses on the convolution's grid (via their
        # CEP_FFT-sample impulse responses), after the previous block's last one
        h = np.exp(self._frame_filters(log_mag))
        h = scipy.fft.rfft(scipy.fft.irfft(h, n=CEP_FFT, axis=-1) * IR_TAPER, n=CONV_FFT, axis=-1)
        h = np.concatenate([h[:1] if self._last is None else self._last, h])
        self._last = h[-1:]
        pulses, noise = self._excitation(np.asarray(f0, np.float64), np.asarray(gain, np.float64))
        exc = np.concatenate([self._history, np.stack([pulses.reshape(-1), NOISE_GAIN * noise.reshape(-1)])],
                             axis=1).astype(np.float32)
        self._history = exc[:, exc.shape[1] - CEP_FFT :]
        # segment i: its samples and the CEP_FFT before them, so the convolution needs no state of its own
        span = CEP_FFT + STREAM_HOP
        windows = np.stack([exc[:, i * STREAM_HOP : i * STREAM_HOP + span] for i in range(k)])  # (K, 2, span)
        spec = scipy.fft.rfft(windows, n=CONV_FFT, axis=-1)
        # (2, K, STREAM_HOP): filtered by frame i - 1's and by frame i's responses
        both = np.stack([(spec * h[j : j + k]).sum(axis=1) for j in (0, 1)])
        ends = scipy.fft.irfft(both, n=CONV_FFT, axis=-1)[..., CEP_FFT:span]
        ramp = ((np.arange(STREAM_HOP) + 0.5) / STREAM_HOP).astype(np.float32)
        out = ends[0] * (1.0 - ramp) + ends[1] * ramp
        return np.clip(out.reshape(-1), -1.0, 1.0).astype(np.float32)
