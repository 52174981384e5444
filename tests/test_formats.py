"""One versioning scheme: every reader refuses a missing, foreign or newer stamp with one clear line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from singer_standins import tiny_pack

from melisma.errors import MelismaError
from melisma.formats import CURRENT, FormatError, check, is_current, stamp, stamp_metadata
from melisma.prepare.manifest import Dataset, read_manifest, to_json
from melisma.singer.voicepack import VoicePackError, load_pack, read_header


def test_stamp_and_check_round_trip_for_every_kind():
    for kind, version in CURRENT.items():
        assert stamp(kind) == {"format": f"melisma.{kind}", "format_version": version}
        assert check(stamp(kind), kind, "f") == version
        assert check(stamp_metadata(kind), kind, "f") == version  # safetensors metadata holds strings
        assert is_current(stamp(kind), kind)


def test_check_refuses_missing_foreign_and_newer_and_accepts_legacy():
    with pytest.raises(FormatError, match=r"^x.json: not a melisma voice pack \(no format stamp\)$"):
        check({"config": {}}, "voice", "x.json")
    with pytest.raises(FormatError, match=r"not a melisma voice pack \(format 'melisma.dataset', expected "
                                          r"'melisma.voice'\)"):
        check(stamp("dataset"), "voice", "x.json")
    with pytest.raises(FormatError, match=r"dataset manifest format version 7 is newer than this melisma reads \(1\)"):
        check({"format": "melisma.dataset", "format_version": 7}, "dataset", "m.json")
    with pytest.raises(FormatError, match="no longer supported"):
        check({"format": "melisma.voice", "format_version": 1}, "voice", "v", oldest=2)
    with pytest.raises(FormatError, match="no valid format_version"):
        check({"format": "melisma.voice", "format_version": "two"}, "voice", "v")
    assert check({"format": "melisma-voice", "format_version": 1}, "voice", "v") == 1  # names before the scheme
    assert check({"format": "melisma-features", "format_version": "1"}, "features", "c") == 1
    assert check({"format": "melisma.timings", "version": 1}, "timings", "t") == 1  # the old key
    assert check({"version": 2}, "checkpoint", "c") == 2  # checkpoints and corpora had no name at all
    assert check({"format_version": 1, "clips": []}, "corpus", "corpus.json") == 1
    with pytest.raises(FormatError):
        check({"version": 1}, "voice", "v")
    assert not is_current({"format": "melisma.features", "format_version": "0"}, "features")


def _rewrite_header(path, header):
    save_file(load_file(str(path)), str(path), metadata={"melisma": json.dumps(header)})


def test_pack_reader_refuses_missing_foreign_and_newer_stamps(tmp_path):
    path = tiny_pack(tmp_path / "v.melisma")
    header = read_header(path)
    assert (header["format"], header["format_version"]) == ("melisma.voice", CURRENT["voice"])
    for changes, message in (({"format": None}, r"not a melisma voice pack \(no format stamp\)"),
                             ({"format": "melisma.evaluation"}, r"format 'melisma.evaluation', expected"),
                             ({"format_version": CURRENT["voice"] + 1}, "is newer than this melisma reads")):
        _rewrite_header(path, {k: v for k, v in {**header, **changes}.items() if v is not None})
        with pytest.raises(VoicePackError, match=message) as err:
            load_pack(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_packs_of_format_version_1_still_load(tmp_path):
    path = tiny_pack(tmp_path / "v1.melisma")
    header = {**read_header(path), "format": "melisma-voice", "format_version": 1}
    _rewrite_header(path, header)
    pack = load_pack(path)
    assert pack.singers == ["alto", "bass"] and pack.content_encoder == "test-encoder"


def test_manifest_reader_checks_the_stamp(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "manifest.json").write_text(to_json(Dataset(settings={"separate": "none"})))
    doc = read_manifest(folder)
    assert (doc["format"], doc["format_version"], doc["clips"]) == ("melisma.dataset", 1, [])
    legacy = {**doc, "format": "melisma-dataset"}  # written before melisma.formats
    (folder / "manifest.json").write_text(json.dumps(legacy))
    assert read_manifest(folder / "manifest.json")["totals"] == doc["totals"]
    for changes, message in (({"format": None}, "no format stamp"), ({"format": "melisma.voice"}, "format 'melisma.voice'"),
                             ({"format_version": 2}, r"format version 2 is newer than this melisma reads \(1\)")):
        bad = {k: v for k, v in {**doc, **changes}.items() if v is not None}
        (folder / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(MelismaError, match=message):
            read_manifest(folder)
    (folder / "manifest.json").write_text("{")
    with pytest.raises(MelismaError, match="not a readable JSON file"):
        read_manifest(folder)


def test_weight_files_are_stamped_and_the_shipped_legacy_stamps_still_read(tmp_path):
    from melisma.content.builtin import BuiltinContentEncoder, default_weights_path, save_builtin
    from melisma.training.vocoder import export_shipped
    from melisma.vocoder.builtin import BuiltinConfig, BuiltinVocoder, load_builtin
    from melisma.vocoder.builtin import save_builtin as save_vocoder

    with safe_open(str(default_weights_path()), "pt") as f:
        assert (f.metadata()["format"], f.metadata()["kind"]) == ("1", "melisma-content-builtin")  # as shipped
    enc = BuiltinContentEncoder.load()
    save_builtin(enc.net, tmp_path / "c.safetensors")
    with safe_open(str(tmp_path / "c.safetensors"), "pt") as f:
        assert f.metadata()["format"] == "melisma.content-weights" and f.metadata()["format_version"] == "1"
    assert BuiltinContentEncoder.load(tmp_path / "c.safetensors").identity == enc.identity

    model = BuiltinVocoder(BuiltinConfig(hidden=16, n_blocks=1))
    save_vocoder(model, tmp_path / "best.safetensors", {"steps": "5", "val_mel_l1": "0.4", "note": "dropped"})
    shipped = export_shipped(tmp_path / "best.safetensors", tmp_path / "ship" / "vocoder-builtin.safetensors")
    with safe_open(str(shipped), "pt") as f:
        meta = f.metadata()
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert meta["format"] == "melisma.vocoder-weights" and meta["steps"] == "5" and "note" not in meta
    assert load_builtin(shipped).cfg == model.cfg
    save_file(load_file(str(shipped)), str(tmp_path / "newer.safetensors"), metadata={**meta, "format_version": "9"})
    with pytest.raises(MelismaError, match="vocoder weights file format version 9 is newer"):
        load_builtin(tmp_path / "newer.safetensors")
