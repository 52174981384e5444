"""Voicing recovery: dropped voiced frames beside voiced runs come back with the right F0; noise stays unvoiced."""

from __future__ import annotations

import numpy as np

from melisma.audio.constants import FRAME_RATE
from melisma.features.pitch import get_pitch_extractor
from melisma.features.voicing import recover_voicing

SR = 16_000


def _harmonic(f0_hz: np.ndarray, sr: int = SR) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0_hz) / sr
    return sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)).astype(np.float32)


def _grid_f0(f0_hz: np.ndarray, sr: int = SR) -> np.ndarray:
    t = np.arange(f0_hz.size // int(sr / FRAME_RATE) + 1)
    return f0_hz[np.minimum((t * sr / FRAME_RATE).astype(int), f0_hz.size - 1)].astype(np.float32)


def test_dropped_frames_beside_a_run_come_back_with_their_f0():
    n = SR * 2
    f0_true = 220.0 * 2 ** (0.5 * np.sin(2 * np.pi * 5 * np.arange(n) / SR) / 12)  # vibrato +-50 c
    audio = _harmonic(f0_true)
    truth = _grid_f0(f0_true)
    dropped = truth.copy()
    gap = np.r_[80:86]
    dropped[gap] = 0.0  # a hole inside the run
    dropped[:10] = 0.0  # and a trimmed onset
    out = recover_voicing(audio, SR, dropped)
    back = np.r_[gap, 2:10]
    assert (out[back] > 0).all()
    cents = np.abs(1200 * np.log2(out[back] / truth[back]))
    assert np.median(cents) < 10 and cents.max() < 30
    kept = dropped > 0
    assert np.array_equal(out[kept], dropped[kept])  # voiced frames are left alone


def test_noise_beside_a_run_stays_unvoiced():
    rng = np.random.default_rng(0)
    tone = _harmonic(np.full(SR, 200.0))
    audio = np.concatenate([tone, 0.3 * rng.standard_normal(SR).astype(np.float32)])
    f0 = np.zeros(audio.size // int(SR / FRAME_RATE) + 1, np.float32)
    f0[:81] = 200.0  # voiced to frame 81 (0.94 s); the tone lasts to 1.0 s (frame 86), then noise
    out = recover_voicing(audio, SR, f0)  # reach 12: frames up to 93 are candidates
    assert (out[88:] == 0).all()  # windows wholly in the noise
    assert (out[81:85] > 0).all()  # the rest of the tone is found
    assert np.abs(out[81:85] - 200.0).max() < 2.0


def test_unvoiced_track_is_returned_unchanged():
    f0 = np.zeros(50, np.float32)
    out = recover_voicing(np.zeros(SR // 2, np.float32), SR, f0)
    assert out.shape == f0.shape and not out.any()


def test_dio_recovers_by_default_and_says_so():
    on, off = get_pitch_extractor("dio"), get_pitch_extractor("dio", recover_voicing=False)
    assert on.settings()["recover_voicing"] and not off.settings()["recover_voicing"]
    audio = _harmonic(220.0 * 2 ** (np.sin(2 * np.pi * 6 * np.arange(SR) / SR) / 12))  # wide vibrato
    a, b = on.extract(audio, SR), off.extract(audio, SR)
    assert (a > 0).sum() >= (b > 0).sum()
    assert np.array_equal(a[b > 0], b[b > 0])
