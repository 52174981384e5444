"""Information perturbation: change who seems to sing, keep what is sung and when.

Two flavours, both keep the duration (and so the frame grid):

* audio domain (numpy, one clip): ``world_shift`` (pitch and formant ratios through WORLD analysis/synthesis,
  exact but ~0.2x real time) and ``random_eq`` (random peaking biquads). For data preparation and tests.
* spectrogram domain (torch, batched, fast enough for every training step): ``perturb_magnitude`` splits a
  linear STFT magnitude into a cepstrally smoothed envelope (formants) and an excitation (harmonics), warps
  each along frequency by its own ratio, and multiplies a random smooth EQ curve. A frequency warp by ``r``
  of a 2048-point magnitude is what resampling by ``r`` does to the spectrum, without the change of tempo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from melisma.audio.constants import FRAME_PERIOD_MS, SAMPLE_RATE


@dataclass(frozen=True)
class PerturbConfig:
    """Ranges of the random perturbation (ratios are drawn log-uniformly within [1/r, r])."""

    pitch_ratio: float = 1.5  # up to +-7 semitones
    formant_ratio: float = 1.3  # up to +-4.5 semitones of formant shift, independent of pitch
    eq_db: float = 9.0  # peak gain of the random EQ curve, dB
    eq_bands: int = 6  # smooth random curve with this many control points
    lifter: int = 40  # cepstral coefficients kept for the envelope


# ---------------------------------------------------------------- audio domain (numpy)

def world_shift(audio: np.ndarray, pitch_ratio: float = 1.0, formant_ratio: float = 1.0,
                sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float audio (n,) -> (n,) with F0 times ``pitch_ratio`` and formants times ``formant_ratio``."""
    import pyworld

    from melisma.features.pitch import world_f0

    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = world_f0(x, sr, "dio", f0_min=71.0, f0_max=800.0)  # pyworld's own dio range
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    bins = np.arange(sp.shape[1], dtype=np.float64)
    src = np.clip(bins / formant_ratio, 0, sp.shape[1] - 1)
    sp = np.stack([np.interp(src, bins, row) for row in sp])
    y = pyworld.synthesize(f0 * pitch_ratio, sp, ap, sr, frame_period=FRAME_PERIOD_MS)
    out = np.zeros(len(audio), dtype=np.float32)
    n = min(len(y), len(audio))
    out[:n] = y[:n]
    return out


def _peaking(fc: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ peaking-EQ biquad (b, a)."""
    amp, w = 10 ** (gain_db / 40), 2 * np.pi * fc / sr
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w), 1 - alpha / amp])
    return b / a[0], a / a[0]


def random_eq(audio: np.ndarray, rng: np.random.Generator, n_bands: int = 4, max_db: float = 9.0,
              sr: int = SAMPLE_RATE) -> np.ndarray:
    """(n,) -> (n,) through ``n_bands`` peaking filters at random log-spaced centres and gains."""
    from scipy.signal import lfilter

    y = np.asarray(audio, dtype=np.float64)
    for _ in range(n_bands):
        fc = float(np.exp(rng.uniform(np.log(150), np.log(min(8000, sr / 2.5)))))
        b, a = _peaking(fc, float(rng.uniform(-max_db, max_db)), float(rng.uniform(0.7, 2.0)), sr)
        y = lfilter(b, a, y)
    return y.astype(np.float32)


# ---------------------------------------------------------------- spectrogram domain (torch, batched)

def warp_frequency(mag: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """(B, F, T) magnitude, (B,) ratios -> (B, F, T) with content at bin k moved to bin k * ratio."""
    b, f, t = mag.shape
    src = torch.arange(f, dtype=mag.dtype, device=mag.device)[None] / ratio[:, None]  # (B, F)
    lo = src.floor().clamp(0, f - 1)
    frac = (src - lo)[:, :, None]
    lo_i = lo.long()[:, :, None].expand(b, f, t)
    hi_i = (lo_i + 1).clamp(max=f - 1)
    out = torch.gather(mag, 1, lo_i) * (1 - frac) + torch.gather(mag, 1, hi_i) * frac
    return out * (src < f - 1)[:, :, None]


def split_envelope(log_mag: torch.Tensor, lifter: int) -> torch.Tensor:
    """(B, F, T) log magnitude -> (B, F, T) cepstrally smoothed envelope (first ``lifter`` coefficients)."""
    f = log_mag.shape[1]
    spec = torch.cat([log_mag, log_mag.flip(1)[:, 1:-1]], dim=1)  # even extension -> real cepstrum
    ceps = torch.fft.rfft(spec, dim=1)
    ceps[:, lifter:] = 0
    return torch.fft.irfft(ceps, n=spec.shape[1], dim=1)[:, :f]


def random_ratio(n: int, max_ratio: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """(n,) ratios log-uniform in [1/max_ratio, max_ratio]."""
    u = torch.rand(n, generator=gen) * 2 - 1
    return torch.exp(u * np.log(max_ratio))


def random_eq_curve(b: int, f: int, max_db: float, bands: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """(B, F, 1) smooth random gains (linear amplitude) over ``f`` linear-frequency bins, log-spaced control."""
    ctrl = (torch.rand(b, 1, bands + 2, generator=gen) * 2 - 1) * max_db
    pos = torch.log1p(torch.arange(f, dtype=torch.float32)) / np.log1p(f - 1) * (bands + 1)
    lo = pos.floor().long().clamp(max=bands)
    frac = pos - lo
    gains_db = ctrl[:, 0, lo] * (1 - frac) + ctrl[:, 0, (lo + 1).clamp(max=bands + 1)] * frac
    return (10 ** (gains_db / 20))[:, :, None]


def perturb_magnitude(mag: torch.Tensor, cfg: PerturbConfig = PerturbConfig(),
                      gen: torch.Generator | None = None) -> torch.Tensor:
    """(B, F, T) linear STFT magnitude -> perturbed (B, F, T): random pitch, formant and EQ per item."""
    b, f, _ = mag.shape
    log_mag = mag.clamp_min(1e-7).log()
    env = split_envelope(log_mag, cfg.lifter)
    exc = (log_mag - env).exp()
    pitch, formant = random_ratio(b, cfg.pitch_ratio, gen), random_ratio(b, cfg.formant_ratio, gen)
    # excitation and envelope both move with the pitch ratio (resampling), the envelope by formant too
    exc = warp_frequency(exc, pitch.to(mag.device))
    env = warp_frequency(env.exp(), (pitch * formant).to(mag.device))
    eq = random_eq_curve(b, f, cfg.eq_db, cfg.eq_bands, gen).to(mag.device)
    return exc * env * eq
