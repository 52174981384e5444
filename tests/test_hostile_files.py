"""Hostile or inconsistent files and unusable outputs: one line, exit code 2, nothing written, inputs untouched."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import torch
from safetensors.torch import load_file, save_file
from singer_standins import TINY, StandInEncoder, StandInVocoder, tiny_pack, write_clip

import melisma.singer.convert as conv
from melisma.cli import main
from melisma.errors import MelismaError
from melisma.singer.voicepack import VoicePackError, load_pack
from melisma.training.singer import read_checkpoint_meta

READ_ONLY = "/proc"  # a folder no one can create files in, root included (chmod does not stop root)


@pytest.fixture(autouse=True)
def stand_ins(monkeypatch):
    comps = {"content": StandInEncoder(), "vocoder": StandInVocoder()}
    monkeypatch.setattr(conv, "default_component", lambda kind, identity: comps[kind])


def _header_and_tensors(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["melisma"]), load_file(str(path))


def _forge(path, header=None, tensors=None, **config):
    """Rewrite the pack at ``path`` with a changed header, config fields or tensors."""
    h, t = _header_and_tensors(path)
    h = header if header is not None else h
    h["config"].update(config)
    save_file(tensors if tensors is not None else t, str(path), metadata={"melisma": json.dumps(h)})
    return path


def _cases(tmp_path):
    """name -> (a hostile pack file, what the error must say)."""
    def fresh(name):
        return tiny_pack(tmp_path / f"{name}.melisma")

    h, t = _header_and_tensors(fresh("ref"))
    wide = dict(t, **{"student.denoiser.head.weight": torch.zeros(TINY.n_mels, 17, 1, dtype=torch.float16)})
    nan = dict(t, **{"student.denoiser.head.bias": torch.full((TINY.n_mels,), float("nan"), dtype=torch.float16)})
    stray = dict(t, **{"optimizer.state": torch.zeros(3)})
    return {
        "tensor shape does not fit config": (_forge(fresh("a"), tensors=wide), "has shape"),
        "config hidden differs from tensors": (_forge(fresh("b"), hidden=32), "has shape"),
        "header singers disagree with config": (_forge(fresh("c"), n_singers=3), "n_singers"),
        "absurd hidden size": (_forge(fresh("d"), hidden=10**9), "hidden = 1000000000 is outside"),
        "absurd total size": (_forge(fresh("e"), hidden=4096, residual_channels=4096, layers=256),
                              "parameters (at most"),
        "negative layers": (_forge(fresh("f"), layers=-1), "layers = -1 is outside"),
        "string size": (_forge(fresh("g"), hidden="128"), "hidden = '128'"),
        "unknown config key": (_forge(fresh("h"), giant=1), "damaged voice pack header"),
        "NaN weights": (_forge(fresh("i"), tensors=nan), "NaN or infinite"),
        "stray tensors": (_forge(fresh("j"), tensors=stray), "belong to no model"),
        "stats of unknown singer": (_forge(fresh("k"), header={**h, "stats": {"x": {"median_f0": 1.0,
                                    "p05_f0": 1.0, "p95_f0": 1.0}}}), "stats must name"),
        "header is a list": (_raw(tmp_path / "l.melisma", t, [1, 2]), "no format stamp"),
        "header is deep JSON": (_raw(tmp_path / "m.melisma", t, "[" * 100_000 + "]" * 100_000), "no header"),
        "truncated file": (_truncated(fresh("n")), "not a voice pack"),
        "a training checkpoint": (_checkpoint_like(tmp_path / "o.melisma", t), "format 'melisma.checkpoint'"),
        "a pickle checkpoint": (_pickle(tmp_path / "p.melisma"), "not a voice pack"),
    }


def _raw(path, tensors, header):
    text = header if isinstance(header, str) else json.dumps(header)
    save_file(tensors, str(path), metadata={"melisma": text})
    return path


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _checkpoint_like(path, tensors):
    return _raw(path, tensors, {"format": "melisma.checkpoint", "format_version": 2})


def _pickle(path):
    torch.save({"model": torch.zeros(3)}, path)
    return path


def test_every_hostile_pack_is_a_one_line_error_found_fast(tmp_path):
    for name, (path, message) in _cases(tmp_path).items():
        start = time.perf_counter()
        with pytest.raises(VoicePackError) as err:
            load_pack(path)
        assert message in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value) and time.perf_counter() - start < 10.0, name


def test_cli_convert_with_a_hostile_pack_exits_2_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "in.wav"
    write_clip(src, 1.0)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    path, _ = _cases(tmp_path)["absurd total size"]
    out = tmp_path / "out.wav"
    assert main(["-q", "convert", str(src), "-v", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("melisma: ") and "internal error" not in err and len(err.splitlines()) == 1
    assert not out.exists() and hashlib.sha256(src.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("output, extra, message", [
    (f"{READ_ONLY}/out.wav", [], "cannot write the output"),
    ("missing/folder/out.wav", [], "does not exist"),
    ("out.ogg", ["--sample-rate", "384000"], "cannot be written at 384000 Hz"),
    ("out.mp3", ["--sample-rate", "96000"], "cannot be written at 96000 Hz"),
    ("out.wav", ["--sample-rate", "100"], "cannot be written at 100 Hz"),
    ("out.wav", ["--steps", "0"], "steps 0"),
])
def test_cli_convert_refuses_unusable_outputs_before_loading_the_voice(tmp_path, capsys, monkeypatch, output,
                                                                       extra, message):
    src = tmp_path / "in.wav"
    write_clip(src, 1.0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(conv, "load_pack", lambda *a: pytest.fail("the voice was loaded"))
    assert main(["-q", "convert", str(src), "-v", str(tiny_pack(tmp_path / "v.melisma")), "-o", output,
                 *extra]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "v.melisma"]


def test_cli_prepare_and_cover_refuse_a_read_only_output(tmp_path, capsys):
    src = tmp_path / "in.wav"
    write_clip(src, 1.0)
    assert main(["-q", "prepare", str(src), "-o", f"{READ_ONLY}/ds", "--separate", "none"]) == 2
    assert "cannot write the dataset" in capsys.readouterr().err
    pack = tiny_pack(tmp_path / "v.melisma")
    assert main(["-q", "cover", str(src), "-v", str(pack), "-o", f"{READ_ONLY}/c.wav", "--separate", "none"]) == 2
    assert "cannot write the output" in capsys.readouterr().err


def test_train_refuses_a_read_only_output_before_extracting_features(tmp_path):
    from melisma.training.singer import TrainConfig, train_voice

    data = tmp_path / "alto"
    data.mkdir()
    write_clip(data / "a.wav", 1.0)
    with pytest.raises(MelismaError, match="cannot write the voice pack"):
        train_voice([("alto", data)], f"{READ_ONLY}/v.melisma", TrainConfig(model=TINY, from_scratch=True),
                    content_encoder=StandInEncoder(), vocoder=StandInVocoder())
    assert list(data.iterdir()) == [data / "a.wav"]  # no cache: nothing was computed


def _checkpoints(tmp_path):
    pack = tiny_pack(tmp_path / "v.melisma")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"step": "4"})
    stateless = tmp_path / "stateless.safetensors"
    save_file({"w": torch.zeros(2)}, str(stateless),
              metadata={"melisma": json.dumps({"format": "melisma.checkpoint", "format_version": 2})})
    return {"voice pack": (pack, "format 'melisma.voice'"), "random bytes": (junk, "not a safetensors file"),
            "no metadata": (bare, "no metadata"), "foreign metadata": (other, "no format stamp"),
            "pickle": (_pickle(tmp_path / "p.pt"), "not a safetensors file"),
            "no run state": (stateless, "without its run state")}


def test_foreign_checkpoints_are_one_line_errors(tmp_path):
    for name, (path, message) in _checkpoints(tmp_path).items():
        with pytest.raises(MelismaError) as err:
            read_checkpoint_meta(path)
        assert message in str(err.value) and "--restart" in str(err.value), (name, str(err.value))


def test_foreign_weights_for_the_builtin_vocoder_and_content_encoder(tmp_path):
    from melisma.content.builtin import BuiltinContentEncoder
    from melisma.vocoder.builtin import load_builtin

    pickle = _pickle(tmp_path / "p.pt")
    pack = tiny_pack(tmp_path / "v.melisma")
    for path in (pickle, pack):
        with pytest.raises(MelismaError, match="not a melisma vocoder weights file"):
            load_builtin(path)
        with pytest.raises(MelismaError, match="not a melisma content encoder weights file"):
            BuiltinContentEncoder.load(path)
