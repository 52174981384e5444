"""Training of the builtin vocoder (resynthesis: ground-truth log-mel + F0 -> waveform).

Loss: multi-resolution STFT (log-magnitude L1 + spectral convergence) plus log-mel L1. No discriminator: the
phase comes from the F0-driven excitation, so spectral losses are enough. Runs on CPU with one thread.

    from melisma.training.vocoder import train_vocoder
    train_vocoder(["data/corpus-train"], "runs/vocoder", steps=20000, heldout_dirs=["data/corpus-heldout"])
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
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE, n_frames
from melisma.corpus import ClipRecord, load_corpus, trainable_clips
from melisma.errors import MelismaError
from melisma.features.mel import log_mel
from melisma.features.pitch import model_pitch
from melisma.training.distributed import World, join_world
from melisma.vocoder.builtin import BuiltinConfig, BuiltinVocoder, load_builtin, save_builtin

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) of the spectral losses


@dataclass
class Clip:
    """One training clip in memory: audio (n,) at SAMPLE_RATE, mel (128, T), f0 (T,) Hz, T = n_frames(n)."""

    name: str
    audio: torch.Tensor
    mel: torch.Tensor
    f0: torch.Tensor


def load_clips(corpus_dirs: Sequence[str | Path], max_clips: int | None = None) -> list[Clip]:
    """Every clip (the first ``max_clips`` of each corpus) in memory; no held-out check: for validation."""
    records = [r for d in corpus_dirs for r in load_corpus(d)[:max_clips]]
    return clips_in_memory(records, ", ".join(map(str, corpus_dirs)))


def clips_in_memory(records: Sequence[ClipRecord], source: str) -> list[Clip]:
    """Audio, true F0 where the clip has it (else the model's F0) and log-mel of each record; ``source`` names
    the corpora in the error raised when there are none."""
    from melisma.audio.io import load_audio

    clips = []
    for rec in records:
        audio, _ = load_audio(rec.audio_path, SAMPLE_RATE)
        f0 = rec.load_f0(n_frames(len(audio))) if rec.has_f0 else model_pitch().extract(audio, SAMPLE_RATE)
        mel = log_mel(torch.from_numpy(audio))[0]
        clips.append(Clip(rec.audio_path.stem, torch.from_numpy(audio), mel, torch.from_numpy(f0)))
    if not clips:
        raise MelismaError(f"no clips found in {source}")
    return clips


def sample_batch(clips: list[Clip], batch: int, frames: int, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random aligned crops -> mel (B, 128, frames), f0 (B, frames), audio (B, frames * HOP_SIZE).

    Crops start on a frame centre; short clips are zero-padded (their mel/F0 padded with the silence floor/0).
    Clips are drawn in proportion to their length.
    """
    lengths = np.array([c.mel.shape[-1] for c in clips], dtype=np.float64)
    picks = rng.choice(len(clips), size=batch, p=lengths / lengths.sum())
    mels, f0s, audios = [], [], []
    for i in picks:
        clip = clips[i]
        start = int(rng.integers(0, max(1, clip.mel.shape[-1] - frames)))
        mel = clip.mel[:, start : start + frames]
        f0 = clip.f0[start : start + frames]
        audio = clip.audio[start * HOP_SIZE : (start + frames) * HOP_SIZE]
        pad = frames - mel.shape[-1]
        mels.append(F.pad(mel, (0, pad), value=math.log(1e-5)))
        f0s.append(F.pad(f0, (0, pad)))
        audios.append(F.pad(audio, (0, frames * HOP_SIZE - audio.shape[-1])))
    return torch.stack(mels), torch.stack(f0s), torch.stack(audios)


def _mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-6)


def spectral_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Multi-resolution STFT loss + log-mel L1 between (B, n) waveforms -> (scalar, parts for the log)."""
    total = pred.new_zeros(())
    parts = {}
    for n_fft, hop in STFT_RESOLUTIONS:
        p, t = _mag(pred, n_fft, hop), _mag(target, n_fft, hop)
        log_l1 = (p.log() - t.log()).abs().mean()
        conv = torch.linalg.norm(p - t) / torch.linalg.norm(t).clamp_min(1e-6)
        total = total + log_l1 + conv
        parts[f"stft{n_fft}"] = float(log_l1.detach())
    mel_l1 = (log_mel(pred) - log_mel(target)).abs().mean()
    parts["mel"] = float(mel_l1.detach())
    return total / len(STFT_RESOLUTIONS) + mel_l1, parts


@torch.no_grad()
def validation_mel_l1(model: BuiltinVocoder, clips: list[Clip], max_frames: int = 600) -> float:
    """Mean log-mel L1 of resynthesis over held-out clips (first ``max_frames`` frames of each)."""
    model.eval()
    errs = []
    gen = torch.Generator().manual_seed(0)
    for clip in clips:
        mel, f0 = clip.mel[None, :, :max_frames], clip.f0[None, :max_frames]
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        out = model(mel, f0)
        errs.append(float((log_mel(out)[..., : mel.shape[-1]] - mel).abs().mean()))
    model.train()
    return float(np.mean(errs))


def train_vocoder(
    corpus_dirs: Sequence[str | Path],
    out: str | Path,
    steps: int = 20_000,
    heldout_dirs: Sequence[str | Path] = (),
    batch: int = 8,
    frames: int = 48,
    lr: float = 2e-3,
    eval_every: int = 500,
    max_seconds: float | None = None,
    cfg: BuiltinConfig | None = None,
    init: str | Path | None = None,
    seed: int = 0,
    log=print,
) -> Path:
    """Train the builtin vocoder; write ``out/last.safetensors`` every ``eval_every`` steps and
    ``out/best.safetensors`` whenever the held-out mel L1 improves (training mel L1 without held-out dirs).

    Returns the path of the best weights. ``max_seconds`` stops early (wall clock) after a checkpoint.
    Under torchrun (N processes) each draws ``batch / N`` crops per step with its own generators (seed + rank),
    gradients are averaged before the step, and rank 0 alone logs, validates and writes; its clock decides the
    early stop. Raises MelismaError before anything is written when a training corpus holds a held-out voice,
    or when ``batch`` does not split over the processes.
    """
    world = join_world()
    if batch % world.size:
        raise MelismaError(f"batch size {batch} does not split over {world.size} processes; use a multiple")
    log = log if world.main else _quiet
    records = trainable_clips(corpus_dirs)
    torch.manual_seed(seed + world.rank)  # rank 0 of 1: exactly ``seed``; other ranks' weights are replaced
    rng = np.random.default_rng(seed + world.rank)
    t0 = time.time()
    train = clips_in_memory(records, ", ".join(map(str, corpus_dirs)))
    heldout = (load_clips(heldout_dirs) if heldout_dirs else train[:4]) if world.main else []
    out = Path(out)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    log(f"loaded {len(train)} train clips ({sum(c.audio.numel() for c in train) / SAMPLE_RATE / 60:.1f} min), "
        f"{len(heldout)} held-out, {time.time() - t0:.0f} s")
    model = BuiltinVocoder(cfg)
    if init is not None:
        model.load_state_dict(load_builtin(init).state_dict(), strict=True)
    world.broadcast_weights(model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.8, 0.99), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.03)
    best = math.inf
    best_path = out / "best.safetensors"
    history: list[dict] = []
    for step in range(1, steps + 1):
        mel, f0, audio = sample_batch(train, batch // world.size, frames, rng)
        loss, parts = spectral_loss(model(mel, f0), audio)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        world.average_gradients(model.parameters())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            _log_step(world, log, step, float(loss.item()), parts, time.time() - t0)
        late = max_seconds is not None and world.from_main(time.time() - t0 > max_seconds)
        done = step == steps or late
        if (step % eval_every == 0 or done) and world.main:
            best = _checkpoint(model, heldout, out, step, time.time() - t0, best, history, log)
        if done:
            break
    world.leave()  # every process waits for rank 0's files, then the process group closes
    return best_path


def _quiet(*_: object) -> None:
    """The log of every process but rank 0."""


def _log_step(world: World, log: Callable[[str], object], step: int, loss: float, parts: dict[str, float], seconds: float) -> None:
    """One log line of the step's losses, averaged over the processes (equal shares: the whole batch's)."""
    if world.active:
        every = world.gather((loss, parts))
        loss = float(np.mean([e[0] for e in every]))
        parts = {k: float(np.mean([e[1][k] for e in every])) for k in parts}
    log(f"step {step} loss {loss:.4f} " + " ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f" {seconds:.0f}s")


def _checkpoint(model: BuiltinVocoder, heldout: list[Clip], out: Path, step: int, seconds: float, best: float,
                history: list[dict], log: Callable[[str], object]) -> float:
    """Validate; write ``last`` (and ``best`` when the held-out mel L1 improves) and ``history.json`` (rank 0).
    Returns the best held-out mel L1 so far."""
    val = validation_mel_l1(model, heldout)
    meta = {"steps": str(step), "train_seconds": f"{seconds:.0f}", "val_mel_l1": f"{val:.4f}"}
    save_builtin(model, out / "last.safetensors", meta)
    history.append({"step": step, "seconds": round(seconds), "val_mel_l1": val})
    if val < best:
        best = val
        save_builtin(model, out / "best.safetensors", meta)
    write_text_atomic(out / "history.json", json.dumps(history, indent=1))
    log(f"eval step {step} held-out mel L1 {val:.4f} (best {best:.4f})")
    return best


SHIPPED_FIGURES = ("steps", "train_seconds", "val_mel_l1")  # training figures the shipped file keeps


def export_shipped(weights: str | Path, out: str | Path) -> Path:
    """Write ``weights`` (a training output) to ``out`` as melisma ships them: float16, training figures kept.

    float16 halves the file with no audible change; loading casts back to float32.  Returns ``out``."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        meta = {k: v for k, v in (fh.metadata() or {}).items() if k in SHIPPED_FIGURES}
    save_builtin(load_builtin(weights), out, meta, half=True)
    return Path(out)
