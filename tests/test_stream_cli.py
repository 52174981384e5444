"""``melisma stream`` and ``melisma streamable`` with the shipped streaming networks, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from melisma import paths
from melisma.audio.io import load_audio, save_audio
from melisma.demo import demo_clip

VOICE = "festival-slt"


def melisma(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "melisma", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def short_vocal(tmp_path_factory):
    audio, sr = load_audio(demo_clip("vocal"))
    path = tmp_path_factory.mktemp("in") / "vocal.wav"
    save_audio(path, audio[: 6 * sr], sr)
    return path


def test_stream_converts_a_file_block_by_block_and_reports_its_timing(tmp_path, short_vocal):
    out, report = tmp_path / "out.wav", tmp_path / "report.json"
    done = melisma("stream", str(short_vocal), "-v", VOICE, "-o", str(out), "--block-ms", "20",
                   "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "algorithmic latency 37.4 ms" in done.stdout + done.stderr
    assert "missed deadlines" in done.stdout + done.stderr
    src, sr = load_audio(short_vocal)
    y, out_sr = load_audio(out)
    assert out_sr == 44_100 and y.shape == src.shape
    assert np.sqrt(np.mean(y**2)) > 0.01
    figures = json.loads(report.read_text())
    assert figures["latency_ms"] == pytest.approx(37.4, abs=0.1)
    assert figures["blocks"] >= 6 * 1000 // 20
    assert figures["compute_p50_ms"] > 0


@pytest.mark.parametrize("args, message", [
    (["--block-ms", "0"], "--block-ms"),
    (["-v", "nobody"], "no such streamable voice"),
    (["-v", str(paths.BASE_PACK)], "melisma streamable"),
    (["--transpose", "40"], "transpose"),
])
def test_stream_refuses_bad_options_with_one_line_and_writes_nothing(tmp_path, short_vocal, args, message):
    out = tmp_path / "out.wav"
    base = ["stream", str(short_vocal), "-v", VOICE, "-o", str(out)]
    done = melisma(*base, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_stream_refuses_a_missing_input(tmp_path):
    done = melisma("stream", str(tmp_path / "nope.wav"), "-v", VOICE, "-o", str(tmp_path / "o.wav"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_a_voice_pack_is_made_streamable_by_a_command(tmp_path, short_vocal):
    audio, sr = load_audio(demo_clip("vocal"))
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(4):
        save_audio(clips / f"c{i}.wav", audio[i * 5 * sr : (i + 1) * 5 * sr], sr)
    out = tmp_path / "slt.melisma-stream"
    done = melisma("streamable", VOICE, "-o", str(out), "--audio", str(clips), "--minutes", "1", "--max-steps", "3")
    assert done.returncode == 0, done.stderr
    from melisma.live.engine import open_stream_voice

    voice = open_stream_voice(out)
    assert voice.singers == [VOICE] or VOICE in voice.singers
    assert voice.median_f0[VOICE] > 50
    y = tmp_path / "y.wav"
    done = melisma("stream", str(short_vocal), "-v", str(out), "-o", str(y), "--block-ms", "10")
    assert done.returncode == 0, done.stderr
    assert "algorithmic latency 27.4 ms" in done.stdout + done.stderr
    assert load_audio(y)[0].shape == load_audio(short_vocal)[0].shape
    bad = melisma("streamable", VOICE, "-o", str(tmp_path / "x.wav"), "--audio", str(clips))
    assert bad.returncode == 2 and ".melisma-stream" in bad.stderr
    # a one-shot voice: its reference clip, no voice pack
    ref = tmp_path / "ref.melisma-stream"
    done = melisma("streamable", "--reference", str(clips / "c0.wav"), "-o", str(ref), "--audio", str(clips),
                   "--minutes", "1", "--max-steps", "2")
    assert done.returncode == 0, done.stderr
    one_shot = open_stream_voice(ref)
    assert one_shot.singers == ["reference"] and one_shot.decoder.info["source"]["reference"] == ["c0.wav"]
    conv = one_shot.converter(882)
    sung = audio[5 * sr : 7 * sr]
    assert np.sqrt(np.mean(sung**2)) > 0.01
    y = np.concatenate([conv.process(sung[i : i + 882]) for i in range(0, sung.shape[0] - 881, 882)])
    assert np.isfinite(y).all() and np.sqrt(np.mean(y[conv.latency_samples :] ** 2)) > 1e-3
