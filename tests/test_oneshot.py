"""One-shot conversion: the model's parts, its weights file, speaker embeddings, the reference voice, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from melisma.audio.constants import SAMPLE_RATE
from melisma.audio.io import load_audio, save_audio
from melisma.errors import MelismaError
from melisma.oneshot.model import CLUB, OneShotConfig, OneShotNet, VQCPCHead, normalised_log_f0
from melisma.singer.model import SingerConfig, SingerNet

TINY = OneShotConfig(head_channels=16, code_dim=8, n_codes=16, cpc_steps=2, cpc_hidden=8, pitch_dim=4, speaker_dim=8,
                     speaker_channels=16,
                     singer=SingerConfig(content_dim=12, speaker_dim=8, hidden=16, residual_channels=16, layers=2,
                                         prior_layers=1))


def tone(seconds: float = 2.0, f0: float = 220.0, amp: float = 0.3) -> np.ndarray:
    """A harmonic tone with vibrato: (n,) float32 at SAMPLE_RATE, voiced throughout."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    return sum(amp / k * np.sin(k * phase) for k in range(1, 10)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny one-shot model saved with the identities of the installed content encoder and vocoder."""
    from melisma.oneshot.weights import save_oneshot
    from melisma.singer.convert import default_component

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "oneshot.safetensors"
    enc, voc = default_component("content", "builtin"), default_component("vocoder", "builtin")
    return save_oneshot(OneShotNet(replace(TINY, content_dim=enc.dim)), path, enc.identity, voc.identity,
                        {"test": True})


@pytest.fixture
def shipped(tiny_weights, monkeypatch, tmp_path):
    """The tiny model stands in for the shipped one; saved voices go to a temporary folder."""
    import melisma.oneshot.weights as weights

    monkeypatch.setattr(weights, "ONESHOT_WEIGHTS", tiny_weights)
    monkeypatch.setenv("MELISMA_VOICES", str(tmp_path / "voices"))
    return tiny_weights


@pytest.fixture(scope="module")
def model(tiny_weights):
    from melisma.oneshot import load_oneshot_model

    return load_oneshot_model(tiny_weights)


# --- parts -----------------------------------------------------------------------------------------------------
def test_singer_model_without_speaker_input_is_unchanged():
    """speaker_dim = 0 adds no parameter and no config key (packs read and compute as before); with a speaker
    input whose projection is zero, the condition equals the plain model's."""
    plain_cfg = SingerConfig(content_dim=6, hidden=16, residual_channels=16, layers=2, prior_layers=1)
    assert "speaker_dim" not in plain_cfg.to_dict()
    torch.manual_seed(0)
    plain = SingerNet(plain_cfg)
    assert not any("speaker" in k for k in plain.state_dict())
    with_spk = SingerNet(replace(plain_cfg, speaker_dim=4))
    state = {**with_spk.state_dict(), **plain.state_dict()}
    state["encoder.speaker_proj.weight"] = torch.zeros(16, 4)
    state["encoder.speaker_proj.bias"] = torch.zeros(16)
    with_spk.load_state_dict(state)
    args = (torch.randn(2, 6, 20), torch.full((2, 20), 220.0), torch.full((2, 20), -20.0), torch.ones(2, 1))
    a, b = plain.condition(*args), with_spk.condition(*args, torch.randn(2, 4))
    assert torch.equal(a.hidden, b.hidden) and torch.equal(a.prior, b.prior)
    with pytest.raises(ValueError, match="speaker embedding"):
        with_spk.condition(*args)


def test_shipped_base_pack_still_loads_and_converts_shapes():
    from melisma.paths import BASE_PACK
    from melisma.singer.voicepack import load_pack

    pack = load_pack(BASE_PACK)
    assert pack.config.speaker_dim == 0 and pack.build_student().encoder.speaker_proj is None


def test_normalised_log_f0_is_shift_invariant_and_zero_when_unvoiced():
    f0 = torch.tensor([[0.0, 200.0, 220.0, 250.0, 0.0, 180.0]])
    a, b = normalised_log_f0(f0), normalised_log_f0(f0 * 2 ** (5 / 12))
    assert torch.allclose(a, b, atol=1e-5)
    assert a[0, 0, 0] == 0 and a[0, 0, 4] == 0 and a[0, 1].tolist() == [0, 1, 1, 1, 0, 1]
    voiced = a[0, 0][a[0, 1] > 0]
    assert abs(float(voiced.mean())) < 1e-5


def test_vq_cpc_head_quantises_and_its_cpc_loss_learns():
    torch.manual_seed(0)
    cfg = replace(TINY, content_dim=10)
    head = VQCPCHead(cfg)
    x = torch.randn(2, 10, 64).cumsum(-1) / 8  # smooth: the future is predictable from the past
    codes = head(x)
    assert codes.q.shape == (2, 8, 64) and codes.idx.shape == (2, 64)
    book = torch.nn.functional.normalize(head.vq.codebook, dim=-1)
    assert torch.allclose(codes.q.transpose(1, 2), book[codes.idx], atol=1e-5)  # every frame is a code
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss, _ = head.cpc_loss(head(x), n_frames=16)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        (loss + head(x).vq_loss).backward()
        opt.step()
    assert float(loss.detach()) < first - 0.3


def test_club_bound_is_high_for_dependent_and_near_zero_for_independent_pairs():
    torch.manual_seed(0)
    x = torch.randn(512, 4)
    dependent, independent = x @ torch.randn(4, 3) + 0.1 * torch.randn(512, 3), torch.randn(512, 3)
    scores = []
    for y in (dependent, independent):
        club = CLUB(4, 3, 32)
        opt = torch.optim.Adam(club.parameters(), lr=1e-2)
        for _ in range(200):
            opt.zero_grad()
            club.learning_loss(x, y).backward()
            opt.step()
        scores.append(float(club.mi(x, y).detach()))
    assert scores[0] > 1.0 and abs(scores[1]) < 0.1 * scores[0]


# --- weights file ------------------------------------------------------------------------------------------------
def test_weights_round_trip_and_damaged_files_are_one_line_errors(tiny_weights, tmp_path):
    from melisma.oneshot.weights import load_oneshot

    w = load_oneshot(tiny_weights)
    assert w.info == {"test": True} and w.identity.startswith("oneshot@")
    assert w.net.cfg.singer.speaker_dim == 8
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    for bad, msg in ((junk, "not a melisma one-shot"), (tmp_path / "none.safetensors", "no one-shot model")):
        with pytest.raises(MelismaError, match=msg) as err:
            load_oneshot(bad)
        assert "\n" not in str(err.value)


# --- embeddings and the reference voice -------------------------------------------------------------------------
def test_embedding_averages_references_and_records_their_pitch(model, tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    save_audio(a, tone(2.0, 220.0), SAMPLE_RATE)
    save_audio(b, tone(2.0, 330.0), SAMPLE_RATE)
    ea, eb, both = model.embed([a]), model.embed([b]), model.embed([a, b])
    assert np.isclose(np.linalg.norm(both.vector), 1.0, atol=1e-5)
    mean = (ea.vector + eb.vector) / np.linalg.norm(ea.vector + eb.vector)
    assert np.allclose(both.vector, mean, atol=1e-4)
    assert 200 < ea.median_f0 < 240 and 300 < eb.median_f0 < 360
    assert both.sources == ("a.wav", "b.wav") and both.model == model.identity


@pytest.mark.parametrize("audio, message", [(np.zeros(SAMPLE_RATE * 2, np.float32), "silent"),
                                            (tone(0.5), "only 0.5"),
                                            (np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE * 2)
                                             .astype(np.float32), "no pitched voice")])
def test_bad_references_are_one_line_errors(model, audio, message):
    with pytest.raises(MelismaError, match=message) as err:
        model.embed([(audio, SAMPLE_RATE)])
    assert "\n" not in str(err.value)


def test_reference_voice_converts_like_a_trained_voice(model):
    src = tone(3.0, 220.0)
    voice = model.voice({"ref": model.embed([(tone(2.0, 440.0), SAMPLE_RATE)])})
    out = voice.convert_detailed(src, SAMPLE_RATE, auto_transpose=True, output_sr=22050)
    assert out.transpose == 12.0  # one octave up to the reference's range
    assert out.sr == 22050 and out.audio.shape == (len(src) // 2,) and np.isfinite(out.audio).all()
    again = voice.convert(src, SAMPLE_RATE, auto_transpose=True, output_sr=22050)[0]
    assert np.array_equal(out.audio, again)  # seeded: the same output
    long = voice.convert(np.tile(src, 2), SAMPLE_RATE, max_chunk_s=2.0)[0]  # chunked
    assert long.shape == (2 * len(src),) and np.isfinite(long).all()
    with pytest.raises(MelismaError, match="consistency sampler"):
        voice.convert(src, SAMPLE_RATE, steps=2, sampler="teacher")


def test_embeddings_mix_like_singers(model):
    from melisma.singer.convert import parse_singer_mix

    ea, eb = model.embed([(tone(2.0, 200.0), SAMPLE_RATE)]), model.embed([(tone(2.0, 400.0), SAMPLE_RATE)])
    voice = model.voice({"a": ea, "b": eb}, "a:0.6,b:0.4")
    mixed = voice.speaker(parse_singer_mix("a:0.6,b:0.4", voice.singers))[0].numpy()
    want = 0.6 * ea.vector + 0.4 * eb.vector
    assert np.allclose(mixed, want / np.linalg.norm(want), atol=1e-5)
    src = tone(2.0, 250.0)
    outs = [voice.convert(src, SAMPLE_RATE, singer=s)[0] for s in ("a", "b", None)]
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[2], outs[0])


def test_embedding_files_round_trip_and_refuse_another_model(model, tmp_path):
    from melisma.oneshot import load_embedding, save_embedding

    emb = model.embed([(tone(), SAMPLE_RATE)])
    path = save_embedding(emb, tmp_path / "x.speaker")
    doc = json.loads(path.read_text())
    assert doc["format"] == "melisma.speaker-embedding" and doc["format_version"] == 1
    back = load_embedding(path)
    assert np.allclose(back.vector, emb.vector, atol=1e-5) and back.median_f0 == emb.median_f0
    other = replace(back, model="oneshot@000000000000")
    with pytest.raises(MelismaError, match="embed its references again"):
        model.voice({"x": other})
    path.write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(MelismaError, match="newer"):
        load_embedding(path)


# --- the command line ---------------------------------------------------------------------------------------------
def _run(argv, capsys):
    from melisma.cli import main

    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_cli_convert_with_reference_embed_then_voice_name_and_mix(shipped, tmp_path, capsys):
    src, ref_a, ref_b = tmp_path / "src.wav", tmp_path / "ra.wav", tmp_path / "rb.wav"
    save_audio(src, tone(2.5, 220.0), SAMPLE_RATE)
    save_audio(ref_a, tone(2.0, 330.0), SAMPLE_RATE)
    save_audio(ref_b, tone(2.0, 180.0), SAMPLE_RATE)
    out = tmp_path / "out.wav"
    timings = tmp_path / "t.json"
    ref_c = tmp_path / "rc.wav"
    save_audio(ref_c, tone(2.0, 350.0), SAMPLE_RATE)
    code, _ = _run(["convert", str(src), "--reference", str(ref_a), "--reference", str(ref_c), "-o", str(out),
                    "--auto-transpose", "--timings", str(timings), "-q"], capsys)
    assert code == 0
    y, sr = load_audio(out, None)
    assert sr == SAMPLE_RATE and len(y) == int(2.5 * SAMPLE_RATE)
    assert json.loads(timings.read_text())["clips"][str(out)]["transpose"] > 4  # up to the references' range
    assert _run(["voices", "embed", str(ref_a), "-o", "alto", "-q"], capsys)[0] == 0
    assert _run(["voices", "embed", str(ref_b), "-o", str(tmp_path / "bass"), "-q"], capsys)[0] == 0
    assert (tmp_path / "voices" / "alto.speaker").is_file() and (tmp_path / "bass.speaker").is_file()
    by_name = tmp_path / "by_name.wav"
    assert _run(["convert", str(src), "-v", "alto", "-o", str(by_name), "-q"], capsys)[0] == 0
    mix = tmp_path / "mix.wav"
    bass = str(tmp_path / "bass.speaker")
    assert _run(["convert", str(src), "-v", f"alto:0.6,{bass}:0.4", "-o", str(mix), "-q"], capsys)[0] == 0
    assert not np.allclose(load_audio(by_name)[0], load_audio(mix)[0])
    code, err = _run(["voices", "embed", str(ref_a), "-o", "alto", "-q"], capsys)
    assert code == 2 and "exists" in err


@pytest.mark.parametrize("case", ["missing", "silent", "short", "both", "neither", "unknown mix"])
def test_cli_bad_references_are_one_line_errors_and_write_nothing(shipped, tmp_path, capsys, case):
    src = tmp_path / "src.wav"
    save_audio(src, tone(2.0), SAMPLE_RATE)
    save_audio(tmp_path / "silent.wav", np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    save_audio(tmp_path / "short.wav", tone(0.3), SAMPLE_RATE)
    (tmp_path / "voices").mkdir()
    argv = {"missing": ["--reference", str(tmp_path / "nope.wav")],
            "silent": ["--reference", str(tmp_path / "silent.wav")],
            "short": ["--reference", str(tmp_path / "short.wav")],
            "both": ["--reference", str(src), "-v", "alto"], "neither": [],
            "unknown mix": ["-v", f"{tmp_path / 'silent.wav'}:0.5,nobody:0.5"]}[case]
    out = tmp_path / "out.wav"
    code, err = _run(["convert", str(src), "-o", str(out), *argv], capsys)
    assert code == 2 and err.startswith("melisma: ") and "\n" not in err
    assert not out.exists()


def test_cli_cover_with_reference(shipped, tmp_path, capsys):
    song, ref = tmp_path / "song.wav", tmp_path / "ref.wav"
    save_audio(song, tone(2.0, 220.0), SAMPLE_RATE)
    save_audio(ref, tone(2.0, 300.0), SAMPLE_RATE)
    out = tmp_path / "cover.wav"
    code, err = _run(["cover", str(song), "--reference", str(ref), "--separate", "none", "-o", str(out), "-q"], capsys)
    assert code == 0, err
    y, sr = load_audio(out, None)
    assert sr == SAMPLE_RATE and abs(len(y) - 2 * SAMPLE_RATE) <= 512 and np.abs(y).max() > 0


def test_the_shipped_model_loads_with_the_installed_content_encoder_and_vocoder():
    from melisma.oneshot import load_oneshot_model
    from melisma.paths import ONESHOT_WEIGHTS

    model = load_oneshot_model()
    assert model.weights.info["voices"] >= 30 and model.identity.startswith("oneshot@")
    assert ONESHOT_WEIGHTS.stat().st_size < 12_000_000  # float16, a few MB
    assert model.net.decoder.cfg.speaker_dim == model.net.cfg.speaker_dim
