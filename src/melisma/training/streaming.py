"""Distilling the streaming networks (``melisma.live``) from the offline stages.

Each streaming network learns, frame by frame and causally, what an offline stage gives at the time its frame
describes (``frame_time(k)``, the centre of the frame's window), read off the offline frame grid by linear
interpolation:

- ``content``: streaming log-mel -> the offline content encoder's output on the whole clip;
- ``vocoder``: the clip's offline log-mel and its F0 -> the builtin vocoder's filter log magnitudes;
- ``decoder`` (one per voice): streaming content, the streaming F0 (YIN, transposed as the conversion is) and
  loudness, singer weights -> the normalised log-mel the voice's offline singer model draws for the clip
  (``Voice.sample_mel``, one consistency step, seeded), so the streamable voice imitates its voice pack.

Inputs come from ``melisma.live.frontend.analyse`` (what the engine computes live); losses are L1, with the
first ``WARMUP`` frames of each random crop left out (their causal context is cut by the crop). A time budget
with cosine decay; the weights with the best validation L1 (held-back clips) are kept. Corpora are read by
``trainable_clips``: held-out voices are refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from melisma.atomic import write_text_atomic
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.live.frontend import analyse, frame_time
from melisma.live.nets import (
    CausalStack,
    StreamConfig,
    content_inputs,
    decoder_inputs,
    vocoder_inputs,
)
from melisma.live.weights import net_identity, save_stream_net
from melisma.vocoder.builtin import BuiltinVocoder

WARMUP = 24  # frames at the start of a crop that the loss skips
CROP = 192  # frames per training crop (1.1 s)


@dataclass
class Example:
    """One clip on the streaming grid: network input (K, D_in), target (K, D_out), weights (S,) or None."""

    inputs: torch.Tensor
    target: torch.Tensor
    singer: torch.Tensor | None = None


def at_stream_frames(track: np.ndarray, k: int) -> np.ndarray:
    """(D, T) offline track at hop 512 -> (k, D): its value at ``frame_time`` of streaming frames 1..k (linear;
    held at the ends)."""
    pos = np.clip(frame_time(np.arange(1, k + 1)) / HOP_SIZE, 0, track.shape[-1] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, track.shape[-1] - 1)
    w = (pos - lo)[:, None]
    return (track[:, lo].T * (1 - w) + track[:, hi].T * w).astype(np.float32)


def valid_from(k: int) -> int:
    """First streaming frame row (0-based) whose time is not before the clip's start."""
    return int(np.searchsorted(frame_time(np.arange(1, k + 1)), 0))


def content_example(audio: np.ndarray, encoder: torch.nn.Module) -> Example:
    """Streaming log-mel -> offline content (``encoder``: the content encoder the base model uses)."""
    fr = analyse(audio)
    with torch.no_grad():
        target = encoder(torch.from_numpy(audio)[None])[0].numpy()
    s = valid_from(len(fr))
    return Example(torch.from_numpy(content_inputs(fr.mel)[s:]), torch.from_numpy(at_stream_frames(target, len(fr))[s:]))


def vocoder_example(audio: np.ndarray, mel: torch.Tensor, f0: torch.Tensor, vocoder: BuiltinVocoder) -> Example:
    """Offline log-mel (128, T) and F0 (T,) of a clip -> its builtin vocoder filters; the input F0 is the
    streaming one (what the engine gives the vocoder), the input mel the offline one on the streaming grid."""
    fr = analyse(audio)
    with torch.no_grad():
        target = vocoder.net(mel[None], f0[None]).clamp(max=8.0)[0].numpy()
    k = len(fr)
    s = valid_from(k)
    x = vocoder_inputs(at_stream_frames(mel.numpy(), k), fr.f0)
    return Example(torch.from_numpy(x[s:]), torch.from_numpy(at_stream_frames(target, k)[s:]))


def decoder_example(audio: np.ndarray, voice, content_net: CausalStack, singer: str, seed: int,
                    singers: Sequence[str]) -> Example:
    """One clip converted offline by ``voice`` (a ``Voice``) to ``singer`` (auto-transposed towards the singer,
    as a live user would set the key) -> the decoder's streaming inputs, the offline mel and the one-hot weights
    of ``singer`` among ``singers`` (the decoder's rows)."""
    from melisma.audio.constants import n_frames
    from melisma.features.pitch import fit_frames
    from melisma.singer.convert import ConvertOptions, parse_singer_mix

    weights = parse_singer_mix(singer, voice.singers)
    f0, shift = voice.model_f0(audio, 0.0, True, weights)
    x = np.ascontiguousarray(audio, dtype=np.float32)
    with torch.no_grad():
        content = voice.features.content(x, shifts=())
        f0_t = torch.from_numpy(fit_frames(f0, n_frames(len(x))))[None]
        loud = torch.from_numpy(voice.features.loudness(x))[None]
        mel = voice.sample_mel(content, f0_t, loud, weights, ConvertOptions(),
                               torch.Generator().manual_seed(seed))[0].numpy()
        fr = analyse(audio)
        stream_content = content_net(torch.from_numpy(content_inputs(fr.mel))[None])[0][0].numpy()
    inputs = decoder_inputs(stream_content, fr.f0 * 2.0 ** (shift / 12.0), fr.loudness)
    k = len(fr)
    s = valid_from(k)
    one_hot = torch.zeros(len(singers))
    one_hot[list(singers).index(singer)] = 1.0
    return Example(torch.from_numpy(inputs[s:]), torch.from_numpy(at_stream_frames(mel, k)[s:]), one_hot)


def sample_batch(examples: Sequence[Example], batch: int, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Random crops of CROP frames (clips drawn in proportion to length; short ones zero-padded) ->
    inputs (B, CROP, D_in), targets (B, CROP, D_out), singer weights (B, S) or None, loss mask (B, CROP)."""
    lengths = np.array([e.inputs.shape[0] for e in examples], dtype=np.float64)
    picks = rng.choice(len(examples), size=batch, p=lengths / lengths.sum())
    xs, ys, ws, ms = [], [], [], []
    for i in picks:
        e = examples[i]
        start = int(rng.integers(0, max(1, e.inputs.shape[0] - CROP)))
        x, y = e.inputs[start : start + CROP], e.target[start : start + CROP]
        mask = torch.ones(x.shape[0])
        if start > 0:
            mask[:WARMUP] = 0.0
        pad = CROP - x.shape[0]
        xs.append(torch.nn.functional.pad(x, (0, 0, 0, pad)))
        ys.append(torch.nn.functional.pad(y, (0, 0, 0, pad)))
        ms.append(torch.nn.functional.pad(mask, (0, pad)))
        if e.singer is not None:
            ws.append(e.singer)
    return torch.stack(xs), torch.stack(ys), (torch.stack(ws) if ws else None), torch.stack(ms)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the frames ``mask`` (B, T) keeps."""
    return ((pred - target).abs().mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def validate(net: CausalStack, examples: Sequence[Example]) -> float:
    """Mean L1 over whole held-back clips, each run from the start of a stream (state None)."""
    net.eval()
    total, frames = 0.0, 0
    for e in examples:
        w = None if e.singer is None else e.singer[None]
        pred, _ = net(e.inputs[None], None, w)
        total += float((pred[0] - e.target).abs().mean(-1).sum())
        frames += e.inputs.shape[0]
    net.train()
    return total / max(frames, 1)


def train_loop(net: CausalStack, step_loss: Callable[[], torch.Tensor], val_loss: Callable[[], float],
               minutes: float, max_steps: int | None, lr: float, every: int, label: str,
               log: Callable[[str], object]) -> dict:
    """AdamW with cosine decay over ``minutes`` (or ``max_steps``), ``val_loss`` every ``every`` steps; ``net``
    ends with the weights of the best validation. -> {"steps", "minutes", "best", "log"}."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    budget = minutes * 60.0
    start = time.monotonic()
    best, best_state, step, rows = math.inf, None, 0, []
    net.train()
    while True:
        elapsed = time.monotonic() - start
        done = elapsed >= budget if max_steps is None else step >= max_steps
        if step % every == 0 or done:
            v = val_loss()
            rows.append({"step": step, "seconds": round(elapsed, 1), "val": round(v, 5)})
            log(f"step {step:6d}  {elapsed / 60:5.1f} min  val {label} {v:.4f}")
            if v < best:
                best, best_state = v, {k: t.detach().clone() for k, t in net.state_dict().items()}
        if done:
            break
        frac = elapsed / budget if max_steps is None else step / max_steps
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    return {"steps": step, "minutes": round((time.monotonic() - start) / 60, 2), "best": round(best, 5), "log": rows}


def fit(net: CausalStack, train: Sequence[Example], val: Sequence[Example], minutes: float, out: Path,
        info: dict, *, lr: float = 2e-3, batch: int = 16, seed: int = 0, max_steps: int | None = None,
        log: Callable[[str], object] = print) -> dict:
    """Train ``net`` on ``train`` for ``minutes`` (or ``max_steps``), keep the best by ``validate`` on ``val``,
    write it to ``out`` (float16, ``info`` in its metadata) and ``out``.json (the log). Returns the summary."""
    if not train or not val:
        raise MelismaError("distillation needs training and validation clips")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    def step_loss() -> torch.Tensor:
        x, y, w, mask = sample_batch(train, batch, rng)
        return masked_l1(net(x, None, w)[0], y, mask)

    run = train_loop(net, step_loss, lambda: validate(net, val), minutes, max_steps, lr, 200, "L1", log)
    summary = {"steps": run["steps"], "minutes": run["minutes"], "best_val_l1": run["best"],
               "train_clips": len(train), "val_clips": len(val), "log": run["log"]}
    save_stream_net(net, out, {**info, "training": {k: v for k, v in summary.items() if k != "log"}})
    write_text_atomic(out.with_name(out.name + ".json"), json.dumps(summary, indent=1))
    return summary


def split(items: list, n_val: int, seed: int) -> tuple[list, list]:
    """A seeded shuffle of ``items`` -> (train, the last ``n_val``)."""
    order = np.random.default_rng(seed).permutation(len(items))
    shuffled = [items[i] for i in order]
    return shuffled[:-n_val] if n_val else shuffled, shuffled[-n_val:]


def corpus_audio(corpora: Sequence[str | Path], minutes: float, seed: int) -> list:
    """ClipRecords of the corpora (``trainable_clips``: held-out voices refused), a seeded sample lasting
    about ``minutes`` of audio, spread over every voice."""
    from melisma.corpus import trainable_clips

    records = trainable_clips(corpora)
    if not records:
        raise MelismaError("the corpora hold no clips")
    order = np.random.default_rng(seed).permutation(len(records))
    chosen, total = [], 0.0
    for i in order:
        if total >= minutes * 60.0:
            break
        chosen.append(records[i])
        total += records[i].duration
    return chosen


def distill_content(corpora: Sequence[str | Path], out: str | Path, minutes: float = 10.0,
                    audio_minutes: float = 30.0, seed: int = 0, max_steps: int | None = None,
                    log: Callable[[str], object] = print) -> dict:
    """The streaming content network, distilled from the builtin content encoder."""
    from melisma.content import get_content_encoder

    encoder = get_content_encoder("builtin")
    records = corpus_audio(corpora, audio_minutes, seed)
    log(f"{len(records)} clips: content targets")
    examples = [content_example(r.load_audio(), encoder) for r in records]
    train, val = split(examples, max(1, len(examples) // 20), seed)
    net = CausalStack(StreamConfig("content", 128, encoder.dim))
    return fit(net, train, val, minutes, Path(out), {"teacher": encoder.identity}, seed=seed,
               max_steps=max_steps, log=log)


def distill_vocoder(corpora: Sequence[str | Path], out: str | Path, minutes: float = 10.0,
                    audio_minutes: float = 20.0, seed: int = 0, max_steps: int | None = None,
                    log: Callable[[str], object] = print) -> dict:
    """The streaming vocoder network, distilled from the builtin vocoder's filter network."""
    from melisma.training.vocoder import clips_in_memory
    from melisma.vocoder.builtin import load_builtin

    vocoder = load_builtin()
    records = corpus_audio(corpora, audio_minutes, seed)
    log(f"{len(records)} clips: vocoder targets")
    examples = [vocoder_example(c.audio.numpy(), c.mel, c.f0, vocoder)
                for c in clips_in_memory(records, ", ".join(map(str, corpora)))]
    train, val = split(examples, max(1, len(examples) // 20), seed)
    net = CausalStack(StreamConfig("vocoder", 130, 2 * (vocoder.cfg.n_fft // 2 + 1), n_blocks=4))
    return fit(net, train, val, minutes, Path(out), {"teacher": vocoder.identity}, seed=seed,
               max_steps=max_steps, log=log)


def singer_medians(voice) -> dict[str, float]:
    """Median F0 (Hz) of each singer of a ``Voice`` (its pack's statistics) or a ``ReferenceVoice`` (its
    references'), for auto-transposition of the streamable voice."""
    if hasattr(voice, "embeddings"):
        return {name: float(e.median_f0) for name, e in voice.embeddings.items()}
    return {s: float(voice.pack.stats[s].median_f0) for s in voice.singers}


def distill_voice(voice, sources: Sequence[np.ndarray], out: str | Path, content_net: CausalStack,
                  vocoder_net: CausalStack, minutes: float = 10.0, seed: int = 0, max_steps: int | None = None,
                  source_info: dict | None = None, singers: Sequence[str] | None = None,
                  log: Callable[[str], object] = print) -> dict:
    """A streamable voice: a decoder distilled from ``voice`` (a ``Voice`` or a one-shot ``ReferenceVoice``)
    converting ``sources`` ((n,) clips at 44.1 kHz), each to one of ``singers`` (default: all of the voice's)
    in turn from a random start, so every singer gets its share."""
    singers = list(singers or voice.singers)
    rng = np.random.default_rng(seed)
    log(f"{len(sources)} clips x {len(singers)} singers: offline conversions")
    examples = []
    for i, audio in enumerate(sources):
        singer = singers[(i + int(rng.integers(len(singers)))) % len(singers)]
        examples.append(decoder_example(audio, voice, content_net, singer, seed + i, singers))
    train, val = split(examples, max(1, len(examples) // 20), seed)
    net = CausalStack(StreamConfig("decoder", content_net.cfg.out_dim + 3, 128, n_singers=len(singers)))
    median = {s: m for s, m in singer_medians(voice).items() if s in singers}
    info = {"singers": singers, "median_f0": median, "content": net_identity(content_net),
            "vocoder": net_identity(vocoder_net), "source": source_info or {}}
    return fit(net, train, val, minutes, Path(out), info, seed=seed, max_steps=max_steps, log=log)


def foundation_stream(corpora: Sequence[str | Path], run: str | Path, minutes: float = 12.0,
                      audio_minutes: float = 30.0, seed: int = 0, max_steps: int | None = None,
                      log: Callable[[str], object] = print) -> dict[str, Path]:
    """The shipped streaming networks in ``run``: content and vocoder (generic; the vocoder distilled, then
    trained on through the causal synthesis), then the decoder of the base pack's singers (the built-in voices stream through it). A network whose file is already in ``run`` is kept,
    so an interrupted recipe goes on from the next one."""
    from melisma import paths
    from melisma.live.weights import load_stream_net
    from melisma.singer.convert import load_voice

    corpus_audio(corpora, audio_minutes, seed)  # refuses held-out voices before anything is written
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    files = {role: run / f"stream-{role}.safetensors" for role in ("content", "vocoder-distilled", "vocoder", "base")}
    if not files["content"].is_file():
        log("content network")
        distill_content(corpora, files["content"], minutes, audio_minutes, seed, max_steps, log)
    if not files["vocoder-distilled"].is_file():
        log("vocoder network: distilled from the builtin vocoder's filters")
        distill_vocoder(corpora, files["vocoder-distilled"], minutes, audio_minutes * 2 / 3, seed, max_steps, log)
    if not files["vocoder"].is_file():
        log("vocoder network: trained on through the causal synthesis")
        finetune_vocoder(corpora, files["vocoder-distilled"], files["vocoder"], minutes, audio_minutes * 2 / 3,
                         seed, max_steps, log=log)
    if not files["base"].is_file():
        log("decoder of the base pack's singers")
        content = load_stream_net(files["content"], "content").net
        vocoder = load_stream_net(files["vocoder"], "vocoder").net
        sources = [r.load_audio()[: 20 * SAMPLE_RATE] for r in corpus_audio(corpora, audio_minutes, seed + 1)]
        distill_voice(load_voice(paths.BASE_PACK), sources, files["base"], content, vocoder, minutes=minutes,
                      seed=seed, max_steps=max_steps, source_info={"voice": "singer-base"}, log=log)
    return files


@dataclass
class AudioExample:
    """One clip for training the vocoder network through the causal synthesis: network inputs (K, 130) on the
    streaming grid (offline log-mel, streaming F0), the streaming F0 (K,) and the clip's audio (n,)."""

    inputs: torch.Tensor
    f0: torch.Tensor
    audio: torch.Tensor


def audio_example(audio: np.ndarray, mel: torch.Tensor) -> AudioExample:
    fr = analyse(audio)
    x = vocoder_inputs(at_stream_frames(mel.numpy(), len(fr)), fr.f0)
    return AudioExample(torch.from_numpy(x), torch.from_numpy(fr.f0), torch.from_numpy(audio))


def audio_batch(examples: Sequence[AudioExample], batch: int, frames: int, rng: np.random.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crops of ``frames`` frames -> inputs (B, frames, 130), F0 (B, frames), the audio their segments
    describe (B, frames * STREAM_HOP): frame k's segment is input time [256 k - 768, 256 k - 512)."""
    from melisma.live.frontend import STREAM_HOP

    lengths = np.array([e.inputs.shape[0] for e in examples], dtype=np.float64)
    picks = rng.choice(len(examples), size=batch, p=lengths / lengths.sum())
    xs, fs, ys = [], [], []
    for i in picks:
        e = examples[i]
        start = int(rng.integers(0, max(1, e.inputs.shape[0] - frames)))
        x, f = e.inputs[start : start + frames], e.f0[start : start + frames]
        pad = frames - x.shape[0]
        xs.append(F.pad(x, (0, 0, 0, pad)))
        fs.append(F.pad(f, (0, pad)))
        first = (start + 1) * STREAM_HOP - 3 * STREAM_HOP  # input time of this crop's first output sample
        seg = e.audio[max(first, 0) : first + frames * STREAM_HOP]
        seg = F.pad(seg, (max(-first, 0), 0))
        ys.append(F.pad(seg, (0, frames * STREAM_HOP - seg.shape[0])))
    return torch.stack(xs), torch.stack(fs), torch.stack(ys)


def finetune_vocoder(corpora: Sequence[str | Path], init: str | Path, out: str | Path, minutes: float = 15.0,
                     audio_minutes: float = 20.0, seed: int = 0, max_steps: int | None = None, lr: float = 3e-4,
                     log: Callable[[str], object] = print) -> dict:
    """The streaming vocoder network trained through the causal synthesis (``synthesis_torch``) against the
    clips' own audio, with the offline vocoder's spectral loss, from the distilled network ``init``: the
    offline filters were learnt for the offline synthesis, and the causal one renders them differently."""
    from melisma.live.synthesis_torch import synthesize
    from melisma.live.weights import load_stream_net
    from melisma.training.vocoder import clips_in_memory, spectral_loss

    start_net = load_stream_net(init, "vocoder")
    init_identity = start_net.identity  # before training changes the weights
    net = start_net.net.train()
    records = corpus_audio(corpora, audio_minutes, seed + 2)
    examples = [audio_example(c.audio.numpy(), c.mel) for c in clips_in_memory(records, ", ".join(map(str, corpora)))]
    train, val = split(examples, max(1, len(examples) // 20), seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    frames, warm = 128, 12 * 256  # loss skips the crop's first samples: no excitation or network history there

    def loss_of(x: torch.Tensor, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        filters, _ = net(x)
        noise = torch.randn(y.shape, generator=gen)
        pred = synthesize(filters, f, noise)
        return spectral_loss(pred[:, warm:], y[:, warm:])[0]

    val_batch = audio_batch(val, 8, frames, np.random.default_rng(seed + 9))

    def val_loss() -> float:
        with torch.no_grad():
            gen.manual_seed(seed + 1)
            return float(loss_of(*val_batch))

    run = train_loop(net, lambda: loss_of(*audio_batch(train, 8, frames, rng)), val_loss, minutes, max_steps, lr,
                     50, "spectral loss", log)
    summary = {"steps": run["steps"], "minutes": run["minutes"], "best_val_loss": run["best"],
               "init": init_identity, "train_clips": len(train), "val_clips": len(val), "log": run["log"]}
    info = {**start_net.info, "finetuned": {k: v for k, v in summary.items() if k != "log"}}
    save_stream_net(net, Path(out), info)
    write_text_atomic(Path(out).with_name(Path(out).name + ".json"), json.dumps(summary, indent=1))
    return summary
