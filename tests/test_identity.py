"""Component identities name the exact weights: packs refuse a content encoder or vocoder they were not trained with."""

from __future__ import annotations

import pytest
import torch
from singer_standins import TINY, StandInVocoder

from melisma.content import get_content_encoder
from melisma.identity import RELEASED, identity_matches, registry_name, weights_hash, weights_identity
from melisma.paths import BASE_PACK
from melisma.singer.convert import Voice, load_voice
from melisma.singer.model import SingerNet
from melisma.singer.voicepack import SingerStats, VoicePack, VoicePackError, load_pack, read_header, save_pack
from melisma.vocoder import get_vocoder

SHIPPED_CONTENT = "builtin@b26d7d9c75fe"  # weights_identity of content-builtin.safetensors


def _pack(path, content_identity: str):
    torch.manual_seed(0)
    net = SingerNet(TINY)
    stats = {"alto": SingerStats(330.0, 250.0, 500.0), "bass": SingerStats(110.0, 80.0, 200.0)}
    return save_pack(VoicePack(TINY, ["alto", "bass"], stats, content_identity, "test-vocoder",
                               net.state_dict()), path)


def _perturbed_encoder():
    enc = get_content_encoder("builtin")
    with torch.no_grad():
        next(enc.parameters()).view(-1)[0] += 1e-3
    return enc


def test_weights_hash_changes_with_any_weight_and_ignores_storage_precision():
    state = {"b": torch.arange(4.0).half(), "a": torch.ones(2, 3)}
    same = {"a": torch.ones(2, 3), "b": torch.arange(4.0)}  # float32 copy of the float16 values, other order
    assert weights_hash(state) == weights_hash(same)
    changed = {**same, "a": same["a"].clone()}
    changed["a"][1, 2] = 1.0001
    assert weights_hash(changed) != weights_hash(same)
    assert weights_identity("builtin", same) == "builtin@" + weights_hash(same)[:12]
    assert registry_name("builtin@0123456789ab") == registry_name("builtin-v1") == "builtin"
    assert registry_name("dsp-cepstral-v1") == "dsp-cepstral"


def test_shipped_weights_carry_their_released_hashes():
    enc, voc = get_content_encoder("builtin"), get_vocoder("builtin")
    assert enc.identity == SHIPPED_CONTENT
    assert weights_hash(enc.state_dict()) in RELEASED["content"]["builtin"]
    assert weights_hash(voc.state_dict()) in RELEASED["vocoder"]["builtin-v1"]
    header = read_header(BASE_PACK)  # written before hashes: names a release
    assert (header["content_encoder"], header["vocoder"]) == ("builtin", "builtin-v1")
    assert identity_matches("content", "builtin", enc.identity)
    assert identity_matches("vocoder", "builtin-v1", voc.identity)


def test_the_shipped_base_pack_loads_with_the_shipped_encoder_and_vocoder():
    voice = load_voice(read_header(BASE_PACK)["singers"][0])
    assert voice.content_encoder.identity == SHIPPED_CONTENT
    assert identity_matches("vocoder", voice.pack.vocoder, voice.vocoder.identity)


def test_a_pack_trained_with_the_shipped_encoder_loads_and_refuses_perturbed_weights(tmp_path):
    enc = get_content_encoder("builtin")
    for recorded in (enc.identity, "builtin"):  # a new pack (hash) and an old one (released name)
        path = _pack(tmp_path / f"{recorded}.melisma", recorded)
        voice = load_voice(path, content_encoder=enc, vocoder=StandInVocoder())
        assert voice.pack.content_encoder == recorded
        bad = _perturbed_encoder()
        assert bad.identity.startswith("builtin@") and bad.identity != enc.identity
        with pytest.raises(VoicePackError) as err:
            load_voice(path, content_encoder=bad, vocoder=StandInVocoder())
        msg = str(err.value)
        assert "\n" not in msg and recorded in msg and bad.identity in msg
        assert msg.startswith("this voice pack was trained with the content encoder")
        if recorded == "builtin":
            assert f"(weights {SHIPPED_CONTENT})" in msg


def test_retrained_weights_get_an_identity_no_old_pack_accepts(tmp_path):
    from melisma.content.builtin import BuiltinContentEncoder, save_builtin

    save_builtin(_perturbed_encoder().net, tmp_path / "retrained.safetensors")
    retrained = BuiltinContentEncoder.load(tmp_path / "retrained.safetensors")
    assert retrained.identity == _perturbed_encoder().identity  # the hash survives a save and load
    for old in ("builtin", "builtin-v2"):
        assert not identity_matches("content", old, retrained.identity)
    assert not identity_matches("content", SHIPPED_CONTENT, retrained.identity)
    assert identity_matches("content", retrained.identity, retrained.identity)


def test_weight_free_and_foreign_names_match_by_name():
    cep = get_content_encoder("dsp-cepstral")
    assert cep.identity == "dsp-cepstral-v1" and identity_matches("content", "dsp-cepstral-v1", cep.identity)
    assert not identity_matches("content", "dsp-cepstral-v1", SHIPPED_CONTENT)
    # HuBERT packs from before hashes recorded only the checkpoint's name: matched by name as they were
    assert identity_matches("content", "contentvec:vec768l12", "contentvec:vec768l12@0123456789ab")
    assert not identity_matches("content", "contentvec:vec768l12@0123456789ab", "contentvec:vec768l12@ba9876543210")


def test_voice_checks_the_vocoder_identity_too(tmp_path):
    pack = load_pack(_pack(tmp_path / "p.melisma", SHIPPED_CONTENT))
    with pytest.raises(VoicePackError, match="trained with the vocoder 'test-vocoder'; the loaded one is 'builtin@"):
        Voice(pack, get_content_encoder("builtin"), get_vocoder("builtin"))
