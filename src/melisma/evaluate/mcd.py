"""Mel-cepstral distortion (MCD, dB) between a converted clip and a parallel reference, after DTW.

Mel-cepstrum: the real cepstrum of the WORLD (CheapTrick) log-amplitude envelope on an all-pass
frequency-warped axis (SPTK-style ``mcep`` of a smooth envelope).  MCD over coefficients 1..24 with the
usual ``10 / ln 10 * sqrt(2 * sum d^2)`` per aligned frame pair, averaged along the DTW path; silent
frames (more than SILENCE_DB below the loudest frame) are dropped first on each side.

Both clips are judged at 16 kHz, like the other speech-trained metrics: timbre (formants) lives below
8 kHz, and at 44.1 kHz the log spectrum of an empty upper band (a band-limited source, a vocoder's
noise floor) would dominate the distance.
"""

from __future__ import annotations

import numpy as np

from melisma.audio.constants import F0_MAX, F0_MIN
from melisma.evaluate.resample import JUDGE_RATE, to_16k

ORDER = 24  # coefficients 1..ORDER enter the distance (c0, the energy, does not)
SILENCE_DB = 40.0
MCD_CONST = 10.0 / np.log(10.0) * np.sqrt(2.0)  # dB per unit of cepstral Euclidean distance
# all-pass warping constants that approximate the mel scale (SPTK's customary values)
_ALPHAS = {8000: 0.31, 16000: 0.42, 22050: 0.455, 24000: 0.466, 32000: 0.5, 44100: 0.544, 48000: 0.554}


def warp_alpha(sr: int) -> float:
    """All-pass constant approximating the mel scale at ``sr`` Hz (nearest tabulated rate)."""
    return _ALPHAS[min(_ALPHAS, key=lambda r: abs(r - sr))]


def mel_cepstrum(audio: np.ndarray, sr: int, order: int = ORDER) -> np.ndarray:
    """(n,) mono at ``sr`` -> (T, order + 1) mel-cepstra c0..c_order, one per FRAME_PERIOD_MS frame."""
    import pyworld

    from melisma.features.pitch import world_f0

    x = np.asarray(audio, dtype=np.float64)
    f0, t = world_f0(x, sr, "dio", f0_min=F0_MIN, f0_max=F0_MAX)
    sp = pyworld.cheaptrick(x, f0, t, sr)  # (T, fft/2 + 1) power envelope
    log_amp = 0.5 * np.log(np.maximum(sp, 1e-16))
    warped = _warp_frequency_axis(log_amp, warp_alpha(sr))
    cep = np.fft.irfft(warped, axis=1)  # real cepstrum of an even log-amplitude spectrum
    return cep[:, : order + 1]


def _warp_frequency_axis(log_amp: np.ndarray, alpha: float) -> np.ndarray:
    """Resample (T, K) spectra from linear frequency onto the all-pass (mel-like) warped axis."""
    k = log_amp.shape[1]
    theta = np.linspace(0.0, np.pi, k)  # uniform on the warped axis
    omega = theta - 2.0 * np.arctan(alpha * np.sin(theta) / (1.0 + alpha * np.cos(theta)))  # inverse warp
    grid = np.linspace(0.0, np.pi, k)
    return np.stack([np.interp(omega, grid, row) for row in log_amp])


def _voiced_energy_frames(cep: np.ndarray) -> np.ndarray:
    """Drop frames whose c0 (log energy) lies more than SILENCE_DB below the loudest frame."""
    db = 20.0 / np.log(10.0) * cep[:, 0]
    keep = db > db.max() - SILENCE_DB
    return cep[keep]


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Align (Ta, D) and (Tb, D) by dynamic time warping (Euclidean, steps (1,0), (0,1), (1,1)).

    Returns the frame indices (ia, ib) of the optimal path, from (0, 0) to (Ta-1, Tb-1).  The table is
    filled one anti-diagonal at a time (numpy does the inner loop) keeping only two diagonals of
    accumulated cost and one byte per cell for the step taken, so two 3-minute songs (15k frames each)
    need ~240 MB, not gigabytes.
    """
    n, m = len(a), len(b)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    steps = np.zeros((n, m), np.uint8)  # 0: diagonal, 1: from (i-1, j), 2: from (i, j-1)
    prev2 = np.full(n + 1, np.inf)  # accumulated cost on diagonal k-2, indexed by i (1-based)
    prev2[0] = 0.0
    prev = np.full(n + 1, np.inf)  # diagonal k-1
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        options = np.stack([prev2[i - 1], prev[i - 1], prev[i]])  # (i-1,j-1), (i-1,j), (i,j-1)
        choice = np.argmin(options, axis=0)
        cur = np.full(n + 1, np.inf)
        cur[i] = options[choice, np.arange(i.size)] + np.linalg.norm(a[i - 1] - b[j - 1], axis=1)
        steps[i - 1, j - 1] = choice
        prev2, prev = prev, cur
    return _backtrack(steps)


def _backtrack(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = steps.shape[0] - 1, steps.shape[1] - 1
    path = [(i, j)]
    moves = ((-1, -1), (-1, 0), (0, -1))
    while (i, j) != (0, 0):
        di, dj = moves[steps[i, j]]
        i, j = i + di, j + dj
        path.append((i, j))
    ia, ib = np.array(path[::-1]).T
    return ia, ib


def mcd(converted: np.ndarray, reference: np.ndarray, sr: int) -> float:
    """MCD in dB between two clips at ``sr`` (lower is better; 0 for identical clips), judged at 16 kHz."""
    a = _voiced_energy_frames(mel_cepstrum(to_16k(converted, sr), JUDGE_RATE))[:, 1:]
    b = _voiced_energy_frames(mel_cepstrum(to_16k(reference, sr), JUDGE_RATE))[:, 1:]
    ia, ib = dtw_path(a, b)
    dist = np.sqrt(np.sum((a[ia] - b[ib]) ** 2, axis=1))
    return float(MCD_CONST * dist.mean())
