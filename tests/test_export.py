"""ONNX export and the onnxruntime engine: numpy twins of the torch front end and vocoder signal path, graphs that
match their torch modules, a whole conversion that matches the torch engine given the same noise, a CLI that
never imports torch, and exports that refuse to be trusted when damaged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.cli import main
from melisma.errors import MelismaError
from melisma.features.mel import log_mel, log_mel_np, magnitude_stft, magnitude_stft_np
from melisma.onnx import synthesis as S
from melisma.vocoder import builtin as B
from melisma.vocoder import source

pytest.importorskip("onnxruntime")
SRC = Path(__file__).resolve().parents[1] / "src"


def sung(seconds: float, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A sung-like test signal: stepped melody with vibrato, harmonics, breath noise and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220.0 * 2 ** ((np.floor(t / 0.4) % 5) * 2 / 12 + 0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    env = (np.sin(np.pi * (t % 1.5) / 1.5) > 0.15).astype(np.float64)
    voice = sum(0.2 / k * np.sin(k * phase) for k in range(1, 12))
    return (env * voice + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def f0_track(frames: int) -> np.ndarray:
    f0 = (200 + 60 * np.sin(np.arange(frames) / 25)).astype(np.float32)
    f0[(np.arange(frames) // 40) % 3 == 0] = 0.0
    return f0[None]


@pytest.mark.parametrize("n", [300, 1024, 1025, 4097, 3 * SAMPLE_RATE + 17])
def test_numpy_log_mel_is_the_torch_log_mel(n):
    x = sung(n / SAMPLE_RATE + 0.01)[:n] + np.float32(1e-3)
    assert np.abs(log_mel(x).numpy() - log_mel_np(x)).max() < 2e-4  # natural-log units: float32 FFT rounding
    mag_t = magnitude_stft(torch.from_numpy(x)[None]).numpy()
    np.testing.assert_allclose(magnitude_stft_np(x[None]), mag_t, rtol=1e-4, atol=2e-6 * mag_t.max())
    assert log_mel_np(np.stack([x, x])).shape == (2, 128, n // HOP_SIZE + 1)


def test_numpy_vocoder_signal_path_is_the_torch_one():
    f0 = f0_track(431)
    ft = torch.from_numpy(f0)
    np.testing.assert_array_equal(S.fill_unvoiced(f0), source.fill_unvoiced(ft).numpy())
    np.testing.assert_allclose(S.upsample_linear(f0, HOP_SIZE), source.upsample_linear(ft, HOP_SIZE).numpy(),
                               atol=1e-4)
    exc_t, exc_n = source.harmonic_excitation(ft, HOP_SIZE).numpy(), S.harmonic_excitation(f0, HOP_SIZE)
    assert 10 * np.log10(np.mean(exc_t**2) / np.mean((exc_t - exc_n) ** 2)) > 60  # dB
    frames = torch.randn(1, 30, 21)
    for ratio in (2, 4):
        want = torch.nn.functional.interpolate(frames, size=20 * ratio + 1, mode="linear", align_corners=True)
        got = S.upsample_frames(frames.transpose(1, 2).numpy(), ratio)
        np.testing.assert_allclose(got, want.transpose(1, 2).numpy(), atol=1e-6)
    log_mag = torch.randn(2, 7, 513)
    got = S.minimum_phase_log(log_mag.numpy(), 1024)
    want = B.minimum_phase_log(log_mag, 1024).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    x = torch.from_numpy(sung(0.5))[None]
    window = torch.hann_window(1024)
    spec_t = torch.stft(x, 1024, 256, window=window, center=True, return_complex=True)
    spec_n = S.stft(x.numpy(), 1024, 256)
    np.testing.assert_allclose(spec_n.transpose(0, 2, 1), spec_t.numpy(), atol=2e-3)
    back_t = torch.istft(spec_t, 1024, 256, window=window, center=True, length=x.shape[-1]).numpy()
    np.testing.assert_allclose(S.istft(spec_n, 1024, 256, x.shape[-1]), back_t, atol=1e-5)


def test_numpy_synthesis_is_the_builtin_vocoder_given_its_noise():
    from melisma.vocoder import get_vocoder

    voc = get_vocoder("builtin")
    t = 260
    mel = torch.randn(1, 128, t, generator=torch.Generator().manual_seed(1)) * 1.5 - 6.0
    f0 = torch.from_numpy(f0_track(t))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        want = voc(mel, f0, generator=gen)[0].numpy()
        log_mag = voc.net(mel, f0).clamp(max=S.LOG_MAG_MAX).transpose(1, 2).numpy()
    gen = torch.Generator().manual_seed(7)
    shape = (1, voc.cfg.n_bins, t * HOP_SIZE // voc.cfg.sub_hop + 1)
    noise = np.stack([torch.randn(shape, generator=gen).numpy().transpose(0, 2, 1) for _ in range(2)])
    got = S.synthesize(log_mag, f0.numpy(), noise, voc.cfg.n_fft, voc.cfg.sub_hop)[0]
    assert got.shape == want.shape == (t * HOP_SIZE,)
    assert 10 * np.log10(np.mean(want**2) / np.mean((want - got) ** 2)) > 60


def test_dio_speed_is_a_pitch_setting_only_when_not_the_default():
    from melisma.features.pitch import model_pitch

    assert "speed" not in model_pitch("dio").settings()  # feature caches keyed before the option stay valid
    fast = model_pitch("dio", speed=2)
    assert fast.settings()["speed"] == 2
    x = sung(3.0)
    slow_f0, fast_f0 = model_pitch("dio").extract(x, SAMPLE_RATE), fast.extract(x, SAMPLE_RATE)
    both = (slow_f0 > 0) & (fast_f0 > 0)
    assert np.mean((slow_f0 > 0) == (fast_f0 > 0)) > 0.98
    assert np.median(np.abs(1200 * np.log2(fast_f0[both] / slow_f0[both]))) < 1.0  # cents
    with pytest.raises(MelismaError, match="speed"):
        model_pitch("dio", speed=13)


def torch_noise(seed: int):
    """The noise the torch engine draws, in the order and layout the onnx engine asks for it."""
    gen = torch.Generator().manual_seed(seed)

    def draw(shape):
        if len(shape) == 4:  # (2, B, frames, bins): the torch vocoder draws (B, bins, frames) twice
            return np.stack([torch.randn((shape[1], shape[3], shape[2]), generator=gen).numpy().transpose(0, 2, 1)
                             for _ in range(2)])
        return torch.randn(shape, generator=gen).numpy()

    return draw


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The built-in voice festival-slt exported once for this module."""
    from melisma.onnx.export import export_voice

    out = tmp_path_factory.mktemp("export") / "slt"
    export_voice("festival-slt", out)
    return out


@pytest.mark.slow
def test_export_writes_stamped_manifest_and_graphs_within_tolerance(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"]) == ("melisma.onnx-export", 1)
    assert sorted(p.name for p in exported.iterdir()) == ["content.onnx", "manifest.json", "singer.onnx",
                                                          "vocoder.onnx"]
    assert manifest["default_singer"] == "festival-slt" and "festival-slt" in manifest["singers"]
    for entry in manifest["graphs"].values():
        assert 0 <= entry["max_abs_error"] <= entry["tolerance"]
    assert manifest["voice"]["content_encoder"].startswith("builtin@")


@pytest.mark.slow
def test_onnx_engine_matches_torch_engine_given_the_same_noise(exported):
    from melisma.onnx.export import WAVEFORM_TOLERANCE
    from melisma.onnx.runtime import load_onnx_voice
    from melisma.singer.convert import load_voice

    audio = sung(9.0, sr=32_000)
    want = load_voice("festival-slt").convert_detailed(audio, 32_000, seed=5, max_chunk_s=6.0, transpose=1)
    onnx_voice = load_onnx_voice(exported, threads=1)
    got = onnx_voice.convert_detailed(audio, 32_000, noise=torch_noise(5), max_chunk_s=6.0, transpose=1)
    assert (got.sr, got.transpose, got.audio.shape) == (want.sr, want.transpose, want.audio.shape)
    err = got.audio - want.audio
    snr = 10 * np.log10(np.mean(want.audio**2) / np.mean(err**2))
    assert np.abs(err).max() <= WAVEFORM_TOLERANCE["max_abs"] and snr >= WAVEFORM_TOLERANCE["snr_db"]
    again = onnx_voice.convert_detailed(audio, 32_000, seed=5, max_chunk_s=6.0, transpose=1).audio
    np.testing.assert_array_equal(again, onnx_voice.convert_detailed(audio, 32_000, seed=5, max_chunk_s=6.0,
                                                                     transpose=1).audio)  # seeded: reproducible
    assert abs(np.std(again) - np.std(want.audio)) < 0.1 * np.std(want.audio)  # its own noise: same level


@pytest.mark.slow
def test_cli_convert_with_onnx_engine_never_imports_torch(exported, tmp_path):
    src, out = tmp_path / "in.wav", tmp_path / "out.flac"
    sf.write(str(src), sung(3.0, sr=22_050), 22_050)
    code = ("import sys; from melisma.cli import main; "
            f"rc = main(['-q', 'convert', {str(src)!r}, '-v', {str(exported)!r}, '--engine', 'onnx', "
            f"'-o', {str(out)!r}, '--threads', '1', '--auto-transpose']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "NO-TORCH"
    y, sr = sf.read(str(out))
    assert sr == SAMPLE_RATE and y.shape == (3 * SAMPLE_RATE,) and np.isfinite(y).all() and np.std(y) > 1e-3


@pytest.mark.slow
def test_damaged_or_foreign_exports_are_refused_in_one_line(exported, tmp_path, capsys):
    import shutil

    from melisma.onnx.runtime import load_onnx_voice

    src = tmp_path / "in.wav"
    sf.write(str(src), sung(1.0), SAMPLE_RATE)
    rc = main(["convert", str(src), "-v", str(tmp_path), "--engine", "onnx", "-o", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "not a melisma export folder" in err
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    data = bytearray((bad / "vocoder.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bad / "vocoder.onnx").write_bytes(bytes(data))
    with pytest.raises(MelismaError, match="sha256"):
        load_onnx_voice(bad)
    manifest = json.loads((exported / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(MelismaError, match="newer"):
        load_onnx_voice(bad)
    voice = load_onnx_voice(exported)
    for kwargs, words in (({"steps": 4}, "one-step"), ({"singer": "nobody"}, "not in this voice pack"),
                          ({"f0": "harvest"}, "loaded with dio")):
        with pytest.raises(MelismaError, match=words):
            voice.convert(sung(1.0), SAMPLE_RATE, **kwargs)
    with pytest.raises(MelismaError, match="torch-free"):
        load_onnx_voice(exported, f0="fcpe")


@pytest.mark.slow
def test_export_cli_int8_and_refusals(tmp_path, capsys):
    from melisma.onnx.runtime import load_onnx_voice

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    rc = main(["export", "festival-slt", "-o", str(tmp_path / "busy")])
    assert rc != 0 and "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["keep.txt"]
    rc = main(["export", "no-such-voice", "-o", str(tmp_path / "x")])
    assert rc != 0 and "no such voice" in capsys.readouterr().err and not (tmp_path / "x").exists()
    rc = main(["-q", "export", "festival-slt", "-o", str(tmp_path / "q"), "--quantize", "int8", "--pitch-speed", "2"])
    assert rc == 0
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["quantize"] == "int8" and manifest["pitch"]["speed"] == 2
    assert load_onnx_voice(tmp_path / "q").features.pitch.settings() == manifest["pitch"]
    assert (tmp_path / "q" / "singer.onnx").stat().st_size < 6_000_000  # int8 weights: about a quarter
    y = load_onnx_voice(tmp_path / "q").convert(sung(2.0), SAMPLE_RATE)[0]
    assert y.shape == (2 * SAMPLE_RATE,) and np.isfinite(y).all() and np.std(y) > 1e-3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
