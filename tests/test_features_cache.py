"""Features on one grid, the per-clip cache (reuse, invalidation), loudness and the features CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from singer_standins import StandInEncoder

from melisma.audio.constants import HOP_SIZE, N_MELS
from melisma.cli import main
from melisma.features.cache import FeatureCache
from melisma.features.extractor import FeatureExtractor
from melisma.features.loudness import frame_a_weighted_db, frame_loudness_db, frame_rms_db


@pytest.fixture
def dataset(tmp_path, sine_clip):
    audio, sr, _ = sine_clip
    root = tmp_path / "ds"
    (root / "wavs").mkdir(parents=True)
    sf.write(root / "wavs" / "a.wav", audio, sr)
    sf.write(root / "wavs" / "b.wav", audio[: sr // 2] * 0.5, sr)
    return root


def test_extractor_features_share_one_grid(sine_clip):
    audio, sr, _ = sine_clip
    feats = FeatureExtractor("dio", StandInEncoder(), pitch_shifts=(-3.0, 3.0))(audio, sr)
    t = audio.size // HOP_SIZE + 1
    assert feats.f0.shape == (t,) and feats.loudness.shape == (t,) and feats.mel.shape == (N_MELS, t)
    assert feats.content.shape == (3, StandInEncoder.dim, t)  # the clip, then its -3 and +3 variants
    assert np.median(feats.f0[feats.f0 > 0]) == pytest.approx(220.0, rel=0.02)
    assert not np.allclose(feats.content[0], feats.content[1])
    at22 = FeatureExtractor("dio", mel=True)(audio[::2], sr // 2)  # same duration at another rate
    assert at22.mel.shape == (N_MELS, t) and at22.f0.shape == (t,) and at22.content is None


def test_model_pitch_is_what_the_extractor_and_conversion_use(sine_clip):
    from melisma.features.pitch import MODEL_ANALYSIS_RATE, model_pitch

    audio, sr, _ = sine_clip
    ex = FeatureExtractor("dio")
    assert ex.pitch.settings() == model_pitch("dio").settings()
    assert ex.pitch.settings()["analysis_rate"] == MODEL_ANALYSIS_RATE
    np.testing.assert_array_equal(ex.f0(audio), model_pitch("dio").extract(audio, sr))


def test_cache_reuses_then_invalidates_on_settings_change(dataset, tmp_path):
    from melisma.features.pitch import model_pitch

    clip = dataset / "wavs" / "a.wav"
    cache = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"))
    first = cache.get(clip)[0]
    entry = cache.entry_path(clip)
    mtime = entry.stat().st_mtime_ns
    again = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"))
    second = again.get(clip)[0]
    assert (again.hits, again.misses) == (1, 0) and entry.stat().st_mtime_ns == mtime
    for name, value in first.arrays().items():
        np.testing.assert_array_equal(value, getattr(second, name))
    changed = FeatureCache(tmp_path / "cache", FeatureExtractor(model_pitch("dio", median=7)))
    changed.get(clip)
    assert (changed.hits, changed.misses) == (0, 1)
    back = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"))  # the entry now holds median=7: stale again
    np.testing.assert_array_equal(back.get(clip)[0].f0, first.f0)
    assert (back.hits, back.misses) == (0, 1)
    assert not list((tmp_path / "cache").glob("*.tmp")), "no temp files left behind"


class OtherEncoder(StandInEncoder):
    identity = "test-encoder-other"


@pytest.mark.parametrize("change", [
    {"content_encoder": OtherEncoder()},  # another content encoder identity
    {"pitch_shifts": (3.0,)},  # other pitch-shift variants
    {"loudness": "A"},  # another loudness kind
])
def test_cache_key_covers_content_identity_shifts_and_loudness(dataset, tmp_path, change):
    clip = dataset / "wavs" / "b.wav"
    base = {"pitch": "dio", "content_encoder": StandInEncoder(), "pitch_shifts": (-3.0,), "loudness": "rms"}
    FeatureCache(tmp_path / "cache", FeatureExtractor(**base)).get(clip)
    same = FeatureCache(tmp_path / "cache", FeatureExtractor(**base))
    same.get(clip)
    other = FeatureCache(tmp_path / "cache", FeatureExtractor(**{**base, **change}))
    pieces = other.get(clip)
    assert (same.hits, other.misses) == (1, 1)
    if "pitch_shifts" in change:
        assert pieces[0].content.shape[0] == 2


def test_long_clips_are_cached_as_pieces(tmp_path, sine_clip):
    audio, sr, _ = sine_clip
    clip = tmp_path / "long.wav"
    sf.write(clip, np.concatenate([audio] * 3), sr)  # 6 s
    cache = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"), max_piece_s=2.5)
    pieces = cache.get(clip)
    assert [p.frames for p in pieces] == [int(2.5 * sr) // HOP_SIZE + 1] * 2 + [int(1.0 * sr) // HOP_SIZE + 1]
    again = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"), max_piece_s=2.5).get(clip)
    assert len(again) == 3 and np.array_equal(again[2].f0, pieces[2].f0)


def test_cache_invalidates_when_audio_changes(dataset, tmp_path, sine_clip):
    clip = dataset / "wavs" / "b.wav"
    cache = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"))
    before = cache.get(clip)[0]
    audio, sr, _ = sine_clip
    sf.write(clip, audio[: sr // 2] * 0.1, sr)  # quieter: loudness must change
    after = cache.get(clip)[0]
    assert cache.misses == 2
    assert np.median(after.loudness) < np.median(before.loudness) - 10


def test_corrupt_entry_is_recomputed(dataset, tmp_path):
    clip = dataset / "wavs" / "b.wav"
    cache = FeatureCache(tmp_path / "cache", FeatureExtractor("dio"))
    cache.get(clip)
    cache.entry_path(clip).write_bytes(b"not safetensors")
    feats = cache.get(clip)[0]
    assert cache.misses == 2 and feats.mel.shape[0] == N_MELS


def test_a_weighting_matches_rms_at_1khz_and_cuts_bass():
    t = np.arange(44_100) / 44_100
    tone_1k = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    tone_100 = (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    assert np.median(frame_a_weighted_db(tone_1k)) == pytest.approx(np.median(frame_rms_db(tone_1k)), abs=0.2)
    assert np.median(frame_a_weighted_db(tone_100)) == pytest.approx(np.median(frame_rms_db(tone_100)) - 19.1, abs=0.5)
    assert frame_loudness_db(tone_1k[:300]).shape == (1,)
    with pytest.raises(ValueError):
        frame_loudness_db(tone_1k, "B")


def test_cli_fills_cache_and_prints_pitch(dataset, tmp_path, capsys):
    assert main(["-q", "features", str(dataset), "--f0", "dio"]) == 0
    entries = sorted((dataset / "cache").glob("*.safetensors"))
    assert [e.name.split("-")[0] for e in entries] == ["a", "b"]
    mtimes = [e.stat().st_mtime_ns for e in entries]
    assert main(["-q", "features", str(dataset), "--f0", "dio"]) == 0
    assert [e.stat().st_mtime_ns for e in entries] == mtimes  # reused, not rewritten
    capsys.readouterr()
    assert main(["features", "pitch", str(dataset / "wavs" / "a.wav")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "time_s,f0_hz" and len(lines) == 1 + 2 * 44_100 // HOP_SIZE + 1
    hz = np.array([float(line.split(",")[1]) for line in lines[1:]])
    assert np.median(hz[hz > 0]) == pytest.approx(220.0, rel=0.02)
    out = tmp_path / "f0.npy"
    assert main(["-q", "features", "pitch", str(dataset / "wavs" / "a.wav"), "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), hz, atol=0.01)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["features", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["features", str(empty)]) == 2
    assert main(["features", "pitch", str(tmp_path / "nope.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("melisma: ") for line in err)
    assert not (empty / "cache").exists()


@pytest.mark.slow
def test_melisma_train_reads_what_melisma_features_filled(dataset, tmp_path, capsys):
    """The CLI defaults of both commands name the same features: train computes none of them again."""
    assert main(["-q", "features", str(dataset)]) == 0
    entries = sorted((dataset / "cache").glob("*.safetensors"))
    mtimes = [e.stat().st_mtime_ns for e in entries]
    capsys.readouterr()
    out = tmp_path / "v.melisma"
    assert main(["train", str(dataset), "-o", str(out), "--teacher-steps", "0", "--distill-steps", "0"]) == 0
    err = capsys.readouterr().err
    assert "features: 2 clip(s) read from the cache, 0 computed" in err, err
    assert [e.stat().st_mtime_ns for e in entries] == mtimes and out.is_file()
