"""The signal half of the builtin vocoder in numpy: what ``melisma.vocoder.builtin.BuiltinVocoder`` does around its
network, for the onnxruntime engine, which runs the network (``FilterNet``) as an ONNX graph and must not import
torch. Each function here is the numpy twin of the torch function named in its docstring, with the same float32
arithmetic step by step (tests/test_export.py checks each pair on the same input).

Shapes: f0 (B, T) Hz at the frame rate (0 = unvoiced), T frames drive T * HOP_SIZE samples; the synthesis STFT has
``n_fft`` bins ``n_fft // 2 + 1`` and hop ``sub_hop`` (the vocoder's config).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.features.mel import hann_window_np

DEFAULT_UNVOICED_HZ = 100.0  # as melisma.vocoder.source: phase keeps running at this rate before the first voice
LOG_MAG_MAX = 8.0  # as BuiltinVocoder.filters: the network's log magnitudes are clamped here


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """``melisma.vocoder.source.fill_unvoiced``: (B, T) Hz -> unvoiced frames hold the last voiced value (the
    next one before the first), DEFAULT_UNVOICED_HZ where nothing is voiced."""
    voiced = f0 > 0
    t = np.broadcast_to(np.arange(f0.shape[-1]), f0.shape)
    last = np.maximum.accumulate(np.where(voiced, t, 0), axis=-1)
    filled = np.take_along_axis(f0, last, axis=-1)
    rev = np.maximum.accumulate(np.where(voiced[:, ::-1], t, 0), axis=-1)
    nxt = np.take_along_axis(f0[:, ::-1], rev, axis=-1)[:, ::-1]
    filled = np.where(filled > 0, filled, nxt)
    return np.where(filled > 0, filled, np.float32(DEFAULT_UNVOICED_HZ)).astype(np.float32)


def upsample_linear(track: np.ndarray, hop: int) -> np.ndarray:
    """``melisma.vocoder.source.upsample_linear``: (B, T) -> (B, T * hop), linear between frame centres, last
    frame held; positions computed in float32 as torch's align_corners interpolation computes them."""
    ext = np.concatenate([track, track[:, -1:]], axis=-1).astype(np.float32)  # (B, T + 1)
    n_out = track.shape[-1] * hop
    scale = np.float32(track.shape[-1]) / np.float32(n_out)
    pos = scale * np.arange(n_out, dtype=np.float32)
    lo = np.minimum(pos.astype(np.int64), ext.shape[-1] - 1)
    hi = np.minimum(lo + 1, ext.shape[-1] - 1)
    frac = pos - lo.astype(np.float32)
    return (ext[:, lo] * (np.float32(1.0) - frac) + ext[:, hi] * frac).astype(np.float32)


def pulse_train(f0_samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``melisma.vocoder.source.pulse_train``: (B, N) instantaneous F0 Hz (> 0) -> (B, N) band-limited pulses."""
    inc = f0_samples.astype(np.float64) / sample_rate
    phase = np.remainder(np.cumsum(inc, axis=-1), 1.0).astype(np.float32) * np.float32(2 * math.pi)
    k = np.maximum(np.floor(np.float32(0.5 * sample_rate) / f0_samples), np.float32(1.0))
    half = np.sin(np.float32(0.5) * phase)
    small = np.abs(half) < 1e-4
    safe = np.where(small, np.float32(1.0), half)
    dirichlet = np.where(small, k, np.sin((k + np.float32(0.5)) * phase) / (2 * safe) - np.float32(0.5))
    return (dirichlet * np.float32(2.0) * np.sqrt(f0_samples / np.float32(sample_rate))).astype(np.float32)


def harmonic_excitation(f0: np.ndarray, hop: int = HOP_SIZE, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``melisma.vocoder.source.harmonic_excitation``: (B, T) F0 Hz -> (B, T * hop) pulse train, faded to 0 over
    unvoiced frames."""
    f0 = np.asarray(f0, dtype=np.float32)
    voiced = (f0 > 0).astype(np.float32)
    return pulse_train(upsample_linear(fill_unvoiced(f0), hop), sample_rate) * upsample_linear(voiced, hop)


def minimum_phase_log(log_mag: np.ndarray, n_fft: int) -> np.ndarray:
    """``melisma.vocoder.builtin.minimum_phase_log``: (..., n_fft // 2 + 1) natural-log magnitude -> complex64 log
    of the minimum-phase response (real: log magnitude, imaginary: unwrapped phase), by folding the cepstrum."""
    cep = scipy.fft.irfft(log_mag.astype(np.float32), n=n_fft, axis=-1)
    fold = np.zeros(n_fft, dtype=np.float32)
    fold[0] = 1.0
    fold[1 : n_fft // 2] = 2.0
    fold[n_fft // 2] = 1.0
    return scipy.fft.rfft(cep * fold, n=n_fft, axis=-1).astype(np.complex64)


def filters(log_mag: np.ndarray, n_fft: int, sub_hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``BuiltinVocoder.filters`` after its network, frames first: (B, T, 2 * n_bins) clamped log magnitudes ->
    the harmonic filter's log magnitude and phase and the noise filter's log magnitude, each float32
    (B, T * HOP_SIZE / sub_hop + 1, n_bins) (kept apart: complex arithmetic in numpy is slower than its parts)."""
    n_bins = n_fft // 2 + 1
    log_mag = np.concatenate([log_mag, log_mag[:, -1:]], axis=1)  # hold the last frame to the clip end
    clog_h = minimum_phase_log(log_mag[..., :n_bins], n_fft)
    stacked = np.concatenate([clog_h.real, clog_h.imag, log_mag[..., n_bins:]], axis=-1)  # (B, T + 1, 3 n_bins)
    stacked = upsample_frames(stacked, HOP_SIZE // sub_hop)
    return stacked[..., :n_bins], stacked[..., n_bins : 2 * n_bins], stacked[..., 2 * n_bins :]


def upsample_frames(x: np.ndarray, ratio: int) -> np.ndarray:
    """(B, L, C) -> (B, (L - 1) * ratio + 1, C), linear with the end points aligned: what
    ``F.interpolate(align_corners=True)`` gives along the frame axis for an integer ``ratio``."""
    b, length, c = x.shape
    out = np.empty((b, (length - 1) * ratio + 1, c), dtype=np.float32)
    out[:, ::ratio] = x
    for k in range(1, ratio):  # written in place, one phase at a time: 3x faster than one broadcast expression
        w = np.float32(k / ratio)
        phase = out[:, k::ratio]
        np.multiply(x[:, :-1], np.float32(1.0) - w, out=phase)
        phase += x[:, 1:] * w
    return out


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``torch.stft(x, n_fft, hop, window=hann, center=True)`` (reflect padding): (B, n) -> (B, n_bins, n // hop
    + 1, n_bins) complex64, frames first."""
    pad = n_fft // 2
    padded = np.pad(x.astype(np.float32), [(0, 0), (pad, pad)], mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    return scipy.fft.rfft(frames * hann_window_np(n_fft), axis=-1)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """``torch.istft(spec, n_fft, hop, window=hann, center=True, length=length)``: (B, F, n_bins) -> (B, length)
    float32, overlap-added and divided by the summed squared window. ``hop`` must divide ``n_fft``."""
    window = hann_window_np(n_fft)
    frames = scipy.fft.irfft(spec, n=n_fft, axis=-1).astype(np.float32, copy=False) * window  # (B, F, n_fft)
    q = n_fft // hop
    b, f = frames.shape[:2]
    out = np.zeros((b, f + q - 1, hop), dtype=np.float32)
    env = np.zeros((f + q - 1, hop), dtype=np.float32)
    blocks = frames.reshape(b, f, q, hop)
    win_blocks = (window**2).reshape(q, hop)
    for i in range(q):
        out[:, i : i + f] += blocks[:, :, i]
        env[i : i + f] += win_blocks[i]
    start = n_fft // 2
    y = out.reshape(b, -1)[:, start : start + length]
    e = env.reshape(-1)[start : start + length]
    return (y / np.where(e > 1e-11, e, np.float32(1.0))).astype(np.float32)


def noise_scale(n_fft: int) -> float:
    """Scale of the complex Gaussian noise spectrum: the STFT power of unit white noise under the Hann window."""
    return float(np.sqrt((hann_window_np(n_fft).astype(np.float32) ** 2).sum() / 2))


def synthesize(log_mag: np.ndarray, f0: np.ndarray, noise: np.ndarray, n_fft: int, sub_hop: int) -> np.ndarray:
    """``BuiltinVocoder.forward`` (eval) after its network: clamped log magnitudes (B, T, 2 * n_bins), f0 (B, T) Hz
    and ``noise`` (2, B, T * HOP_SIZE / sub_hop + 1, n_bins) standard normal (real, imaginary parts; the
    transpose of the torch vocoder's noise) ->
    (B, T * HOP_SIZE) waveform in [-1, 1]."""
    n = f0.shape[-1] * HOP_SIZE
    log_h, phase_h, log_n = filters(log_mag, n_fft, sub_hop)
    x = stft(harmonic_excitation(f0, HOP_SIZE), n_fft, sub_hop)
    mag, cos, sin = np.exp(log_h), np.cos(phase_h), np.sin(phase_h)
    gain = np.exp(log_n) * np.float32(noise_scale(n_fft))
    spec = np.empty(x.shape, dtype=np.complex64)  # H_h X + H_n (noise_re + i noise_im)
    spec.real = mag * (cos * x.real - sin * x.imag) + gain * noise[0]
    spec.imag = mag * (cos * x.imag + sin * x.real) + gain * noise[1]
    return np.clip(istft(spec, n_fft, sub_hop, n), -1.0, 1.0)
