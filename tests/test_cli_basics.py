import subprocess
import sys

import numpy as np
import pytest

from melisma.audio.io import load_audio, save_audio
from melisma.errors import AudioInputError
from melisma.features.loudness import frame_rms_db
from melisma.features.mel import log_mel


def test_module_entry_point_prints_help_from_any_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "melisma", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0
    assert "melisma" in out.stdout


def test_roundtrip_resamples_and_mixes_down(tmp_path, sine_clip):
    audio, sr, _ = sine_clip
    stereo = np.stack([audio, audio * 0.5], axis=1)
    path = save_audio(tmp_path / "a.flac", stereo, sr)
    mono, out_sr = load_audio(path, 22_050)
    assert out_sr == 22_050
    assert abs(mono.size - audio.size // 2) <= 2
    assert np.isclose(np.abs(mono).max(), 0.75 * np.abs(audio).max(), rtol=0.05)


@pytest.mark.parametrize("content", [b"", b"not audio at all" * 100])
def test_bad_files_raise_one_line_errors(tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioInputError) as err:
        load_audio(bad)
    assert "bad.wav" in str(err.value) and "\n" not in str(err.value)


def test_mel_and_loudness_share_the_frame_grid(sine_clip):
    audio, _, _ = sine_clip
    mel = log_mel(audio)
    db = frame_rms_db(audio)
    assert mel.shape == (1, 128, audio.size // 512 + 1)
    assert db.shape == (audio.size // 512 + 1,)
    assert -20 < np.median(db) < -5  # the tone's RMS level, ~ -13 dBFS
    assert frame_rms_db(np.zeros(4410, np.float32)).max() == -100.0


@pytest.mark.parametrize("argv", [["-q", "features", "pitch", "{}"], ["features", "pitch", "{}", "-q"],
                                  ["features", "-q", "pitch", "{}"]])
def test_quiet_is_accepted_before_or_after_the_command(argv, tmp_path, sine_clip):
    from melisma.cli import build_parser

    audio, sr, _ = sine_clip
    path = save_audio(tmp_path / "a.wav", audio, sr)
    args = build_parser().parse_args([a.format(path) for a in argv])
    assert args.quiet is True
    assert build_parser().parse_args(["features", "pitch", str(path)]).quiet is False
