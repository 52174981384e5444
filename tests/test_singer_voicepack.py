"""Voice pack: one versioned safetensors file, strict on load."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from singer_standins import TINY, tiny_pack

from melisma.formats import CURRENT
from melisma.singer.model import SingerConfig, SingerNet
from melisma.singer.voicepack import (
    SingerStats,
    VoicePack,
    VoicePackError,
    load_pack,
    save_pack,
)


def test_round_trip_keeps_everything(tmp_path):
    path = tiny_pack(tmp_path / "v.melisma")
    pack = load_pack(path)
    assert pack.config == TINY
    assert pack.singers == ["alto", "bass"]
    assert pack.stats["bass"].median_f0 == pytest.approx(110.0)
    assert (pack.content_encoder, pack.vocoder) == ("test-encoder", "test-vocoder")
    torch.manual_seed(0)
    ref = SingerNet(TINY).state_dict()
    net = pack.build_student()
    for k, v in net.state_dict().items():  # float16 storage: equal to half precision
        assert torch.allclose(v, ref[k].half().float()), k
    assert pack.build_teacher() is not None
    assert list(tmp_path.iterdir()) == [path]  # written atomically: no temporary file left


def _rewrite_header(path, **changes):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["melisma"])
    header.update(changes)
    save_file(load_file(str(path)), str(path), metadata={"melisma": json.dumps(header)})


def test_rejects_other_version_with_clear_error(tmp_path):
    path = tiny_pack(tmp_path / "v.melisma")
    _rewrite_header(path, format_version=CURRENT["voice"] + 1)
    with pytest.raises(VoicePackError, match=f"voice pack format version {CURRENT['voice'] + 1} is newer than this "
                                             f"melisma reads \\({CURRENT['voice']}\\); upgrade melisma"):
        load_pack(path)


def test_rejects_non_packs_and_mismatched_weights(tmp_path):
    junk = tmp_path / "junk.melisma"
    junk.write_bytes(b"not a pack at all")
    with pytest.raises(VoicePackError, match="not a voice pack"):
        load_pack(junk)
    with pytest.raises(VoicePackError, match="no such voice pack"):
        load_pack(tmp_path / "missing.melisma")
    path = tiny_pack(tmp_path / "v.melisma")
    _rewrite_header(path, config={**TINY.to_dict(), "layers": 3})
    with pytest.raises(VoicePackError, match="do not match"):
        load_pack(path).build_student()


def test_singer_names_must_match_config(tmp_path):
    net = SingerNet(TINY)
    pack = VoicePack(TINY, ["only-one"], {}, "e", "v", net.state_dict())
    with pytest.raises(VoicePackError, match="distinct singer names"):
        save_pack(pack, tmp_path / "x.melisma")
    assert not any(tmp_path.iterdir())


def test_default_model_pack_is_small(tmp_path):
    cfg = SingerConfig(n_singers=4)
    net = SingerNet(cfg)
    params = sum(p.numel() for p in net.parameters())
    assert 1_000_000 < params < 5_000_000
    stats = {f"s{i}": SingerStats(200.0, 150.0, 300.0) for i in range(4)}
    path = save_pack(VoicePack(cfg, list(stats), stats, "builtin", "builtin", net.state_dict(), net.state_dict()),
                     tmp_path / "big.melisma")
    assert path.stat().st_size <= 20 * 1024 * 1024


def test_select_singers_makes_a_single_singer_pack(tmp_path):
    from melisma.singer.voicepack import select_singers

    pack = load_pack(tiny_pack(tmp_path / "v.melisma"))
    bass = select_singers(pack, ["bass"])
    save_pack(bass, tmp_path / "bass.melisma")
    again = load_pack(tmp_path / "bass.melisma")
    assert again.singers == ["bass"] and again.teacher is None
    emb = again.build_student().encoder.singer.weight
    assert torch.allclose(emb[0], pack.student["encoder.singer.weight"][1].half().float())
    with pytest.raises(VoicePackError, match="not in this pack"):
        select_singers(pack, ["tenor"])
