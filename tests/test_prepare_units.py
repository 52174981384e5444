"""Units of `melisma prepare`: slicer, quality flags, loudness, separation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from melisma.audio.constants import SAMPLE_RATE
from melisma.audio.loudness import integrated_lufs, normalize_loudness
from melisma.prepare.quality import QualityThresholds, assess_clip, clipped_fraction
from melisma.prepare.separate import DspSeparator, harmonic_comb, predominant_f0
from melisma.prepare.slicer import SliceSettings, envelope_db, slice_envelope, split_long
from melisma.prepare.synthetic import accompaniment, sdr_db, sung_phrase, synthetic_song

SR = SAMPLE_RATE


def _envelope(sections):
    """[(seconds, dB), ...] -> 10 ms envelope."""
    return np.concatenate([np.full(int(round(s * 100)), db, np.float32) for s, db in sections])


# --- slicer ---------------------------------------------------------------------------------------

def test_long_voiced_run_splits_into_overlapping_clips_under_max():
    env = _envelope([(1.0, -90), (70.0, -20), (1.0, -90)])
    clips = slice_envelope(env)
    assert len(clips) == 3
    lengths = [(b - a) / SR for a, b in clips]
    assert all(20.0 < n <= 30.0 for n in lengths)
    for (_, b0), (a1, _) in zip(clips, clips[1:], strict=False):
        assert math.isclose((b0 - a1) / SR, 1.0, abs_tol=0.02)  # 1 s overlap
    assert clips[0][0] / SR == pytest.approx(0.75, abs=0.02)  # 0.25 s of silence kept before
    assert clips[-1][1] / SR == pytest.approx(71.25, abs=0.02)  # and after


def test_pauses_split_and_short_pieces_merge():
    env = _envelope([(0.5, -90), (6, -20), (1.0, -90), (8, -22), (0.5, -90), (1.5, -20), (2.0, -90), (4, -20)])
    clips = [(a / SR, b / SR) for a, b in slice_envelope(env)]
    # the 1.5 s piece after a short 0.5 s gap merges into the 8 s phrase; long pauses split
    assert len(clips) == 3
    assert clips[0] == pytest.approx((0.25, 6.75), abs=0.02)
    assert clips[1][1] - clips[1][0] == pytest.approx(0.5 + 8 + 0.5 + 1.5, abs=0.05)
    assert clips[2][1] - clips[2][0] == pytest.approx(4.25, abs=0.05)  # keeps 0.25 s before, file ends


def test_threshold_follows_the_tracks_level():
    quiet = _envelope([(5, -50), (2, -95), (5, -50)])
    loud = quiet + 30.0
    assert len(slice_envelope(quiet, SliceSettings(min_length_s=2))) == len(slice_envelope(loud, SliceSettings(min_length_s=2))) == 2
    assert slice_envelope(np.full(500, -120.0, np.float32)) == []


def test_split_long_and_envelope_shapes():
    assert split_long(0, 100, 100, 10) == [(0, 100)]
    parts = split_long(0, 250, 100, 10)
    assert all(e - s <= 100 for s, e in parts) and parts[0][0] == 0 and parts[-1][1] == 250
    assert envelope_db(np.zeros(1000)).shape == (3,)
    assert envelope_db(np.full(441, 0.1))[0] == pytest.approx(-20.0, abs=0.01)


# --- quality flags: each one triggered by a clip made for it, and not by a clean clip --------------

@pytest.fixture(scope="module")
def voice():
    return sung_phrase(5.0, np.random.default_rng(1))


def test_clean_sung_clip_has_no_flags(voice):
    q = assess_clip(voice, clipped_fraction(voice))
    assert q.flags == [] and not q.rejected(strict=True)
    assert q.voiced_fraction > 0.9 and q.harmonic_ratio > 0.85 and q.unvoiced_energy < 0.05


def test_too_short_and_too_quiet(voice):
    assert assess_clip(voice[: int(1.5 * SR)]).flags == ["too_short"]
    q = assess_clip(voice * 10 ** (-50 / 20))
    assert q.flags == ["too_quiet"] and q.rejected()


def test_clipping_flag_uses_the_source_mix(voice):
    hot = np.clip(voice * 6.0, -1.0, 1.0)
    assert clipped_fraction(hot) > 0.01 and clipped_fraction(voice) == 0.0
    assert "clipping" in assess_clip(voice, clipped_fraction(hot)).flags


def test_mostly_unvoiced_flag(voice):
    noise = np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32) * 0.1
    assert assess_clip(noise).flags == ["mostly_unvoiced"]


@pytest.mark.parametrize("extra", ["harmony", "accompaniment"])
def test_leakage_flag_warns_but_keeps_unless_strict(voice, extra):
    rng = np.random.default_rng(5)
    other = sung_phrase(5.0, rng, base_midi=64) if extra == "harmony" else accompaniment(5.0, rng, 0.3)
    q = assess_clip(voice + 0.6 * other)
    assert q.flags == ["leakage"]
    assert not q.rejected() and q.rejected(strict=True)


def test_thresholds_are_settings(voice):
    assert "too_short" in assess_clip(voice, thresholds=QualityThresholds(min_seconds=6.0)).flags


# --- loudness ---------------------------------------------------------------------------------------

def test_normalise_hits_target_and_handles_short_and_silent_clips(voice):
    out, before = normalize_loudness(voice * 0.1, SR, -20.0)
    assert integrated_lufs(out, SR) == pytest.approx(-20.0, abs=0.1) and before < -30
    short, _ = normalize_loudness(voice[:4410] * 0.1, SR, -20.0)  # 0.1 s: below the BS.1770 block
    assert integrated_lufs(short, SR) == pytest.approx(-20.0, abs=0.5)
    silent, lufs = normalize_loudness(np.zeros(SR, np.float32), SR)
    assert lufs == -math.inf and not silent.any()
    loud, _ = normalize_loudness(voice, SR, 0.0)  # would clip: the peak ceiling wins
    assert np.abs(loud).max() <= 0.99 + 1e-6


# --- separation -----------------------------------------------------------------------------------

def test_predominant_f0_follows_the_voice_over_chords():
    import librosa

    t = np.arange(3 * SR) / SR
    f0 = 262.0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(0.3 / k * np.sin(k * phase) for k in range(1, 10))
    mix = voice + accompaniment(3.0, np.random.default_rng(0), 0.3)
    est = predominant_f0(np.abs(librosa.stft(mix.astype(np.float32), n_fft=2048, hop_length=512)))
    true = f0[:: 512][: est.size]
    on = np.abs(1200 * np.log2(np.maximum(est, 1) / true)) < 50
    assert on[10:-10].mean() > 0.9
    comb = harmonic_comb(np.array([200.0, 0.0]), np.array([100.0, 200.0, 300.0, 400.0]))
    assert comb[:, 1].max() == 0.0 and comb[1, 0] == 1.0 and comb[3, 0] == 1.0 and comb[2, 0] < 0.01


def test_dsp_separation_improves_sdr():
    song = synthetic_song(phrase_lengths=(4.0, 5.0), pause=1.0, seed=3)
    est = DspSeparator().separate(song.mix)
    assert est.shape == song.mix.shape and est.dtype == np.float32
    assert sdr_db(est, song.vocal) > sdr_db(song.mix, song.vocal) + 4.0


def test_demucs_weights_missing_says_where_and_auto_falls_back(monkeypatch, tmp_path):
    import importlib.util

    from melisma.errors import MissingDependencyError
    from melisma.prepare import separate

    real = importlib.util.find_spec
    monkeypatch.setattr(separate.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "demucs" else real(name, *a))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingDependencyError) as err:
        separate.DemucsSeparator.check()
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "955717e8-8726e21a.th") in message and "\n" not in message
    fallback = separate.LearnedSeparator if separate.learned_usable() else DspSeparator
    assert isinstance(separate.get_separator("auto"), fallback)
    monkeypatch.setattr(separate, "learned_usable", lambda: False)
    assert isinstance(separate.get_separator("auto"), DspSeparator)
    assert separate.get_separator("none").separate(np.ones(3)).tolist() == [1.0, 1.0, 1.0]


def test_short_silence_is_shared_at_its_middle():
    env = _envelope([(6, -20), (0.4, -90), (6, -20)])
    (a0, b0), (a1, b1) = slice_envelope(env)
    assert b0 == a1 == int(6.2 * SR) and a0 == 0 and b1 == env.size * 441
