"""`melisma demo`: the bundled vocal, converted by the shipped models into a built-in voice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from melisma.audio.io import load_audio
from melisma.cli import main
from melisma.demo import DEFAULT_VOICE, demo_clip, demo_dir
from melisma.features.pitch import get_pitch_extractor


@pytest.mark.slow
def test_demo_writes_the_vocal_sung_by_the_default_voice_in_its_range(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / f"demo-{DEFAULT_VOICE}.wav"
    assert str(out) in printed and "real-time factor" in printed
    y, sr = load_audio(out, None)
    x, _ = load_audio(demo_clip("vocal"))
    assert sr == 44100 and len(y) == len(x)
    assert np.isfinite(y).all() and 0.01 < np.sqrt(np.mean(y**2)) < 0.5
    # piper-joe sings lower than the demo's female voice: auto-transpose takes the melody down an octave
    true_f0 = np.load(demo_dir() / json.loads((demo_dir() / "demo.json").read_text())["files"]["vocal_f0"])
    f0 = get_pitch_extractor("harvest").extract(y, sr)
    both = (f0 > 0) & (true_f0[: len(f0)] > 0)
    assert both.mean() > 0.5
    cents = 1200 * np.log2(f0[both] / true_f0[: len(f0)][both])
    assert abs(np.median(cents) + 1200) < 50


def test_demo_unknown_voice_is_one_line(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "out"), "-v", "no-such-voice"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("melisma:") and "\n" not in err and "no-such-voice" in err
    assert not Path(tmp_path / "out").exists()
