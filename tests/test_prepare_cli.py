"""`melisma prepare` end to end through the CLI: a real song, and every kind of bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from melisma.cli import main
from melisma.prepare.synthetic import sung_phrase, synthetic_song


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _run(capsys, *argv):
    code = main(["-q", "prepare", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture(scope="module")
def song_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("song") / "song.wav"
    sf.write(str(path), synthetic_song().mix, 44_100, subtype="PCM_16")
    return path


@pytest.mark.slow
def test_song_becomes_a_dataset_of_clips(tmp_path, song_path, capsys):
    before = _digest(song_path)
    out = tmp_path / "nested" / "ds"
    code, err = _run(capsys, song_path, "-o", out, "--separate", "dsp")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "melisma.dataset" and manifest["format_version"] == 1
    kept = [c for c in manifest["clips"] if c["status"] == "kept"]
    assert len(kept) >= 3  # four sung phrases separated by 1.5 s pauses
    for clip in kept:
        audio, sr = sf.read(str(out / clip["path"]))
        assert sr == 44_100 and audio.ndim == 1
        assert 2.0 <= clip["duration_s"] <= 30.0 and abs(audio.size / sr - clip["duration_s"]) < 0.01
        assert clip["source"] == str(song_path) and isinstance(clip["flags"], list)
        assert clip["voiced_fraction"] > 0.8
    assert manifest["totals"]["usable_minutes"] > 0.4
    assert "usable audio:" in (out / "report.txt").read_text()
    assert _digest(song_path) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["ds"]  # no temporary folders left

    code, err = _run(capsys, song_path, "-o", out, "--separate", "none")
    assert code != 0 and "not empty" in err and len(err.strip().splitlines()) == 1


def _write(path, kind):
    rng = np.random.default_rng(0)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 50)
    elif kind == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x01\x00WAVEfmt " + rng.bytes(3000))
    elif kind == "truncated":
        sf.write(str(path), sung_phrase(3.0, rng), 44_100, format="FLAC")
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "nan":
        audio = sung_phrase(3.0, rng)
        audio[5000:5100] = np.nan
        sf.write(str(path), audio, 44_100, subtype="FLOAT")
    elif kind == "silence":
        sf.write(str(path), np.zeros(5 * 44_100, np.float32), 44_100)


@pytest.mark.parametrize("kind, name", [
    ("missing", "missing.wav"), ("empty", "empty.wav"), ("text", "notes.txt"), ("text", "renamed.wav"),
    ("corrupt", "corrupt.wav"), ("truncated", "cut.flac"), ("nan", "nan.wav"), ("silence", "silence.wav"),
])
def test_bad_input_gives_one_line_and_no_output(tmp_path, capsys, kind, name):
    src = tmp_path / "in"
    src.mkdir()
    path = src / name
    if kind != "missing":
        _write(path, kind)
    before = _digest(path)
    out = tmp_path / "ds"
    code, err = _run(capsys, path, "-o", out, "--separate", "none")
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("melisma: ") and name in lines[0], err
    assert "Traceback" not in err and "internal error" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert _digest(path) == before


def test_directory_without_audio_is_refused(tmp_path, capsys):
    (tmp_path / "empty_dir").mkdir()
    code, err = _run(capsys, tmp_path / "empty_dir", "-o", tmp_path / "ds")
    assert code != 0 and "no audio files" in err and "empty_dir" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ds").exists()


def test_bad_files_are_skipped_with_reasons_next_to_good_ones(tmp_path, capsys):
    src = tmp_path / "songs"
    src.mkdir()
    sf.write(str(src / "good.flac"), sung_phrase(4.0, np.random.default_rng(2)), 44_100)
    (src / "broken.wav").write_bytes(b"not audio" * 100)
    out = src / "ds"  # inside the input folder: its clips must not become inputs on a re-run
    for extra in ([], ["--force"]):
        code, err = _run(capsys, src, "-o", out, "--separate", "none", *extra)
        assert code == 0, err
        manifest = json.loads((out / "manifest.json").read_text())
        assert len(manifest["sources"]) == 2
        skipped = [s for s in manifest["sources"] if s["status"] == "skipped"]
        assert len(skipped) == 1 and "broken.wav" in skipped[0]["reason"]
        assert "broken.wav" in (out / "report.txt").read_text()
        assert [p.name for p in (out / "clips").iterdir()] == ["good_0001.flac"]
    assert sorted(p.name for p in src.iterdir()) == ["broken.wav", "ds", "good.flac"]


@pytest.mark.parametrize("rate, channels", [(8_000, 1), (192_000, 8)])
def test_extreme_rates_and_channel_counts_are_prepared(tmp_path, capsys, rate, channels):
    rng = np.random.default_rng(3)
    phrase = sung_phrase(3.0, rng, base_midi=55)  # at 44.1 kHz; re-rendered at `rate` below
    t = np.arange(int(3.0 * rate)) / rate
    mono = np.interp(t, np.arange(phrase.size) / 44_100, phrase).astype(np.float32)
    path = tmp_path / f"r{rate}.wav"
    sf.write(str(path), np.repeat(mono[:, None], channels, axis=1) * 0.9, rate, subtype="PCM_24")
    code, err = _run(capsys, path, "-o", tmp_path / "ds", "--separate", "none")
    assert code == 0, err
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    clip = manifest["clips"][0]
    audio, sr = sf.read(str(tmp_path / "ds" / clip["path"]))
    assert sr == 44_100 and audio.ndim == 1 and 2.0 < audio.size / sr <= 3.01


def test_demucs_without_package_says_how_to_get_it(tmp_path, capsys, song_path):
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("demucs") is not None:
        pytest.skip("demucs is installed here")
    code, err = _run(capsys, song_path, "-o", tmp_path / "ds", "--separate", "demucs")
    assert code == 3 and "pip install demucs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ds").exists()


def test_real_process_without_quiet_prints_exactly_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "silence.wav"
    _write(path, "silence")
    proc = subprocess.run([sys.executable, "-m", "melisma", "prepare", str(path), "-o", str(tmp_path / "ds"),
                           "--separate", "dsp"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"melisma: {path}: pure silence, nothing to prepare"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silence.wav"]


def test_only_rejected_clips_means_failure_and_no_output(tmp_path, capsys):
    path = tmp_path / "short.wav"
    sf.write(str(path), sung_phrase(1.2, np.random.default_rng(4)), 44_100)
    code, err = _run(capsys, path, "-o", tmp_path / "ds", "--separate", "none")
    assert code == 2 and "short.wav: no usable clips" in err and "too_short" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.wav"]
