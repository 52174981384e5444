"""The streaming engine (melisma.live): causal analysis, causal networks, causal synthesis, fixed latency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from melisma.errors import MelismaError
from melisma.live.engine import StreamVoice, stream_delay
from melisma.live.frontend import STREAM_HOP, FrontEnd, analyse, frame_time
from melisma.live.nets import CausalStack, StreamConfig, content_inputs
from melisma.live.runtime import NumpyStack
from melisma.live.simulate import run_stream
from melisma.live.synthesis import N_BINS, CausalSynth
from melisma.live.weights import StreamNet, load_stream_net, net_identity, save_stream_net


def _tone(seconds: float = 1.5, f0: float = 220.0, sr: int = 44_100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    vib = f0 * 2 ** (0.2 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(vib) / sr
    return (sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)) * np.minimum(1, t * 8)).astype(np.float32)


def _blocks(x: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    i = 0
    while i < x.shape[0]:
        b = int(rng.integers(1, 1500))
        yield x[i : i + b]
        i += b


def test_the_front_end_block_by_block_equals_the_whole_clip_and_tracks_pitch():
    x = _tone()
    whole = analyse(x)
    assert len(whole) == x.shape[0] // STREAM_HOP
    fe = FrontEnd()
    parts = [fe.push(b) for b in _blocks(x, 0)]
    for name in ("mel", "loudness", "f0", "periodicity"):
        got = np.concatenate([getattr(p, name) for p in parts])
        np.testing.assert_allclose(got, getattr(whole, name), atol=1e-4, err_msg=name)
    # YIN on the vibrato tone: within a few cents of the true F0 at each frame's time
    t = frame_time(np.arange(1, len(whole) + 1)) / 44_100
    true = 220.0 * 2 ** (0.2 * np.sin(2 * np.pi * 5 * t) / 12)
    ok = (t > 0.2) & (whole.f0 > 0)
    assert ok.sum() > 0.9 * (t > 0.2).sum()
    cents = 1200 * np.abs(np.log2(whole.f0[ok] / true[ok]))
    assert np.median(cents) < 10
    assert not analyse(np.zeros(44_100, np.float32)).f0.any()  # silence is unvoiced


def _nets(seed: int = 0, n_singers: int = 2) -> dict[str, CausalStack]:
    torch.manual_seed(seed)
    nets = {"content": CausalStack(StreamConfig("content", 128, 16, hidden=32, n_blocks=3)),
            "decoder": CausalStack(StreamConfig("decoder", 19, 128, hidden=32, n_blocks=3, n_singers=n_singers)),
            "vocoder": CausalStack(StreamConfig("vocoder", 130, 2 * N_BINS, hidden=32, n_blocks=2))}
    with torch.no_grad():  # a vocoder head that gives speech-like filter levels (about -3 in log magnitude)
        nets["vocoder"].head.bias.fill_(-3.0)
        nets["vocoder"].head.weight.mul_(0.01)
        for net in nets.values():
            for block in net.blocks:
                block.gamma.fill_(1.0)  # make the blocks matter
    return nets


def test_causal_stack_chunks_equal_the_whole_sequence_and_the_numpy_runtime_matches():
    net = _nets()["decoder"].eval()
    x = torch.randn(1, 90, 19)
    w = torch.tensor([[0.3, 0.7]])
    with torch.no_grad():
        whole, _ = net(x, None, w)
        state, parts = None, []
        for a, b in ((0, 1), (1, 8), (8, 9), (9, 50), (50, 90)):
            y, state = net(x[:, a:b], state, w)
            parts.append(y)
    np.testing.assert_allclose(torch.cat(parts, 1).numpy(), whole.numpy(), atol=1e-5)
    rt = NumpyStack(net)
    state, parts_np = None, []
    for a, b in ((0, 3), (3, 4), (4, 90)):
        y, state = rt(x[0, a:b].numpy(), state, w[0].numpy())
        parts_np.append(y)
    np.testing.assert_allclose(np.concatenate(parts_np), whole[0].numpy(), atol=1e-4)
    # causal: changing frame 60 changes nothing before it
    x2 = x.clone()
    x2[:, 60] += 5.0
    with torch.no_grad():
        other, _ = net(x2, None, w)
    np.testing.assert_allclose(other[:, :60].numpy(), whole[:, :60].numpy(), atol=1e-6)
    assert (other[:, 60] - whole[:, 60]).abs().max() > 1e-3


def test_causal_synthesis_is_continuous_and_the_same_in_any_grouping_of_frames():
    k = 60
    log_mag = np.full((k, 2 * N_BINS), -3.0, np.float32)
    log_mag[:, N_BINS:] = -7.0  # little noise
    f0 = np.full(k, 200.0, np.float32)
    gain = np.ones(k)
    whole = CausalSynth(seed=1).push(log_mag, f0, gain)
    synth = CausalSynth(seed=1)
    parts = [synth.push(log_mag[a:b], f0[a:b], gain[a:b]) for a, b in ((0, 1), (1, 7), (7, 30), (30, 60))]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
    steady = whole[10 * STREAM_HOP :]
    assert np.sqrt(np.mean(steady**2)) > 0.01
    # no clicks at segment boundaries: the largest sample step is that of a smooth 200 Hz pulse train
    steps = np.abs(np.diff(steady))
    at_edges = steps[STREAM_HOP - 1 :: STREAM_HOP]
    assert at_edges.max() < 1.5 * np.percentile(steps, 99.9)
    # the pitch is the F0 asked for: autocorrelation peak at 44100 / 200 samples
    seg = steady[: 8192] - steady[: 8192].mean()
    ac = np.correlate(seg, seg, "full")[8191:]
    lag = int(np.argmax(ac[150:300])) + 150
    assert abs(lag - 44_100 / 200) <= 1.5


def _voice(tmp_path, n_singers: int = 2) -> StreamVoice:
    nets = _nets(n_singers=n_singers)
    files = {}
    for role, net in nets.items():
        info = {}
        if role == "decoder":
            info = {"singers": [f"s{i}" for i in range(n_singers)], "median_f0": {},
                    "content": net_identity(nets["content"]), "vocoder": net_identity(nets["vocoder"])}
        files[role] = tmp_path / f"{role}.safetensors"
        save_stream_net(net, files[role], info, half=False)
    return StreamVoice(*(load_stream_net(files[r], r) for r in ("content", "decoder", "vocoder")))


@pytest.mark.parametrize("block", [441, 882, 1764, 3528])
def test_latency_is_fixed_and_reported_and_output_does_not_depend_on_the_block_size(tmp_path, block):
    voice = _voice(tmp_path)
    x = _tone(1.2)
    conv = voice.converter(block, singer="s1")
    assert conv.latency_samples == block + stream_delay(block)
    assert conv.delay == 512 + 256 - math.gcd(block, 256)
    assert 1000 * (441 + stream_delay(441)) / 44_100 < 28  # 10 ms blocks: 27.4 ms
    assert 1000 * (882 + stream_delay(882)) / 44_100 < 40  # 20 ms blocks: 37.4 ms
    aligned, report = run_stream(conv, x)
    assert aligned.shape == x.shape and report.blocks >= x.shape[0] // block
    ref, _ = run_stream(voice.converter(256, singer="s1"), x)  # the finest grouping: one frame per block
    np.testing.assert_allclose(aligned, ref, atol=2e-4)
    # as heard: the same output, later by exactly the engine's delay
    heard, _ = run_stream(voice.converter(block, singer="s1"), x, align=False)
    d = conv.delay
    np.testing.assert_allclose(heard[d:], aligned[: x.shape[0] - d], atol=2e-4)
    assert not heard[:d].any()


def test_the_gate_silences_silence_and_input_is_never_changed(tmp_path):
    voice = _voice(tmp_path)
    x = np.concatenate([np.zeros(22_050, np.float32), _tone(1.0), np.zeros(22_050, np.float32)])
    before = x.copy()
    y, _ = run_stream(voice.converter(882, singer="s0"), x)
    assert np.array_equal(x, before)
    assert np.abs(y[: 20_000]).max() == 0.0  # leading silence: nothing
    assert np.sqrt(np.mean(y[30_000:60_000] ** 2)) > 1e-3  # the tone: converted sound
    assert np.abs(y[-15_000:]).max() < 1e-3  # after the gate's hold and the filter's tail: silence


def test_transpose_and_singer_switch_while_running(tmp_path):
    voice = _voice(tmp_path)
    conv = voice.converter(882, singer="s0")
    x = _tone(0.5)
    for i in range(0, x.shape[0] - 882, 882):
        conv.process(x[i : i + 882])
    conv.set_transpose(5)
    conv.set_singer("s0:0.5,s1:0.5")
    assert conv.transpose == 5 and np.allclose(conv._weights, [0.5, 0.5])
    assert conv.process(x[:882]).shape == (882,)
    with pytest.raises(MelismaError):
        conv.set_singer("nobody")
    with pytest.raises(MelismaError):
        conv.set_transpose(float("nan"))
    with pytest.raises(MelismaError, match="block of 100"):
        conv.process(x[:100])


def test_stream_files_are_checked(tmp_path):
    voice = _voice(tmp_path)
    bad = tmp_path / "decoder-wrong.safetensors"
    save_stream_net(voice.decoder.net, bad, {**voice.decoder.info, "content": "stream-content@000000000000"})
    with pytest.raises(MelismaError, match="distilled with the streaming content network"):
        StreamVoice(voice.content, load_stream_net(bad, "decoder"), voice.vocoder)
    with pytest.raises(MelismaError, match="not a decoder"):
        load_stream_net(tmp_path / "content.safetensors", "decoder")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(MelismaError):
        load_stream_net(junk, "content")
    # float16 files load to the same frames as the float32 module within half precision
    half = tmp_path / "half.safetensors"
    save_stream_net(voice.content.net, half)
    a = StreamNet(load_stream_net(half, "content").net).net
    x = torch.from_numpy(content_inputs(analyse(_tone(0.3)).mel))[None]
    with torch.no_grad():
        np.testing.assert_allclose(a(x)[0].numpy(), voice.content.net(x)[0].numpy(), atol=5e-2)


def test_the_torch_synthesis_twin_gives_the_engine_synthesis_and_passes_gradients():
    from melisma.live.synthesis_torch import synthesize

    rng = np.random.default_rng(0)
    k = 40
    log_mag = (rng.standard_normal((k, 2 * N_BINS)) * 0.3 - 4).astype(np.float32)
    f0 = np.where(np.arange(k) % 13 < 9, 180 + 40 * np.sin(np.arange(k) / 5), 0).astype(np.float32)
    y = CausalSynth(seed=3).push(log_mag, f0, np.ones(k))
    noise = np.random.default_rng(3).standard_normal((k, STREAM_HOP)).reshape(-1)  # what CausalSynth(seed=3) draws
    lm = torch.from_numpy(log_mag)[None].requires_grad_(True)
    yt = synthesize(lm, torch.from_numpy(f0)[None], torch.from_numpy(noise)[None])
    np.testing.assert_allclose(np.clip(yt[0].detach().numpy(), -1, 1), y, atol=1e-5)
    yt.pow(2).mean().backward()
    assert lm.grad is not None and torch.isfinite(lm.grad).all() and lm.grad.abs().sum() > 0


@pytest.mark.slow
def test_the_stream_recipe_runs_end_to_end_on_a_tiny_corpus(tmp_path):
    from corpus_standins import write_clips

    from melisma.live.engine import open_stream_voice
    from melisma.training.streaming import foundation_stream

    clips = [(voice, _tone(1.5, f0), None) for voice, f0 in
             (("espeak:en+f3:p60", 200.0), ("festival:ked", 120.0), ("kokoro:jf_alpha", 260.0),
              ("espeak:en+f3:p60", 230.0), ("festival:ked", 140.0), ("kokoro:jf_alpha", 300.0))]
    corpus = write_clips(tmp_path / "corpus", clips)
    files = foundation_stream([corpus], tmp_path / "run", minutes=1, audio_minutes=1, max_steps=2,
                              log=lambda *_: None)
    assert all(f.is_file() for f in files.values())
    voice = open_stream_voice(files["base"], files["content"], files["vocoder"])
    assert len(voice.singers) == 14  # the base pack's singers
    y, report = run_stream(voice.converter(882, singer=voice.singers[0]), _tone(1.0))
    assert np.isfinite(y).all() and report.blocks == 51
