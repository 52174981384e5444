"""Train the learned vocal separator (``melisma.separation.model``) on generated songs (``melisma.separation.data``).

Batches are remixed on the fly, as Demucs trains: a vocal crop from one song over an accompaniment crop from the
same song (half the time, aligned) or another, at a fresh vocal-to-accompaniment ratio and level, so the network
sees far more mixtures than the data folder holds.  The loss is the L1 distance of the masked complex STFTs to the
true stems' (phase-sensitive: it rewards the mask that is best given the mix phase), over the mix's mean
magnitude so that loud and quiet mixes count alike.  Time-budgeted; ``run_dir/last.safetensors`` carries the step
and elapsed time, so the same command resumes (the optimiser restarts its moments); the best validation weights
(vocal + accompaniment SI-SDR on held-back songs) are ``run_dir/best.safetensors``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic
from melisma.audio.constants import SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.separation.data import SongRecord, load_separation_data
from melisma.separation.metrics import si_sdr_db
from melisma.separation.model import (
    BandSplitMasker,
    SeparatorConfig,
    WindowedSeparator,
    load_separator,
    save_separator,
    split_spec,
    stft,
)

Stems = tuple[np.ndarray, np.ndarray]  # (vocal, accompaniment), (n,) float32 each


@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 35.0  # wall-clock budget, resumed runs included
    batch: int = 4
    crop_s: float = 2.0
    lr: float = 2e-3
    warmup_steps: int = 100
    ratio_db: tuple[float, float] = (-12.0, 8.0)  # vocal-to-accompaniment ratio of remixed crops
    level_db: tuple[float, float] = (-32.0, -12.0)  # mix RMS, dBFS
    val_songs: int = 12  # the last songs of the data, never trained on
    val_every: int = 150
    seed: int = 0
    model: SeparatorConfig = field(default_factory=SeparatorConfig)


def refuse_held_out_songs(songs: Sequence[SongRecord], source: str) -> None:
    """MelismaError when a song's vocal is a held-out voice (``melisma.corpus.heldout``)."""
    from melisma.corpus.heldout import near_held_out

    leaked = sorted({s.voice for s in songs if near_held_out(s.voice)})
    if leaked:
        raise MelismaError(f"{source}: holds held-out voice(s) {', '.join(leaked)}; no shipped separator may "
                           "train on them (melisma.corpus.heldout)")


def load_stems(songs: Sequence[SongRecord]) -> list[Stems]:
    return [(s.load("vocal"), s.load("accompaniment")) for s in songs]


def _crop(x: np.ndarray, n: int, start: int) -> np.ndarray:
    seg = x[start: start + n]
    return np.pad(seg, (0, n - seg.size))


def remix(stems: Sequence[Stems], n: int, rng: np.random.Generator, cfg: TrainConfig) -> Stems:
    """One training example: (vocal, accompaniment) crops of ``n`` samples at a random ratio and level."""
    i = int(rng.integers(len(stems)))
    j = i if rng.random() < 0.5 else int(rng.integers(len(stems)))
    vs = int(rng.integers(max(1, stems[i][0].size - n)))
    acs = vs if j == i else int(rng.integers(max(1, stems[j][1].size - n)))
    vocal, acc = _crop(stems[i][0], n, vs), _crop(stems[j][1], n, acs)
    ev, ea = float((vocal**2).sum()), float((acc**2).sum())
    if ev > 0.01 * n * float((stems[i][0] ** 2).mean()) and ea > 0:  # a crop in a vocal gap keeps its silence
        vocal = vocal * math.sqrt(ea / ev * 10 ** (rng.uniform(*cfg.ratio_db) / 10))
    rms = math.sqrt(float(((vocal + acc) ** 2).mean())) or 1.0
    gain = 10 ** (rng.uniform(*cfg.level_db) / 20) / rms
    return (vocal * gain).astype(np.float32), (acc * gain).astype(np.float32)


def sample_batch(stems: Sequence[Stems], cfg: TrainConfig, rng: np.random.Generator):
    """(mix, vocal, accompaniment), each (B, n) float32 tensors at SAMPLE_RATE."""
    n = int(cfg.crop_s * SAMPLE_RATE)
    pairs = [remix(stems, n, rng, cfg) for _ in range(cfg.batch)]
    vocal = torch.from_numpy(np.stack([p[0] for p in pairs]))
    acc = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return vocal + acc, vocal, acc


def separation_loss(model: BandSplitMasker, mix: torch.Tensor, vocal: torch.Tensor):
    """Phase-sensitive complex-STFT L1 of the vocal over each mix's mean |X| (a scalar).

    The accompaniment estimate is mix - vocal estimate, so its error is the vocal's error with the sign
    flipped: this one term scores both stems."""
    spec = stft(mix)
    est_v, _ = split_spec(model, spec)
    scale = spec.abs().mean(dim=(1, 2), keepdim=True) + 1e-8
    return ((est_v - stft(vocal)).abs() / scale).mean()


def validate(model: BandSplitMasker, val: Sequence[Stems]) -> dict[str, float]:
    """Mean SI-SDR (dB) of the separated vocal and accompaniment on whole validation songs."""
    model.eval()
    sep = WindowedSeparator(model)
    scores = []
    for vocal, acc in val:
        est = sep.separate(vocal + acc)
        scores.append((si_sdr_db(est, vocal), si_sdr_db(vocal + acc - est, acc)))
    model.train()
    v, a = np.mean(scores, axis=0)
    return {"vocal_si_sdr": round(float(v), 3), "accompaniment_si_sdr": round(float(a), 3)}


def _lr(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up, then cosine decay over the time budget to 5 % of ``cfg.lr``."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    frac = min(1.0, elapsed / (cfg.minutes * 60))
    return cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def _resume(run: Path, cfg: TrainConfig) -> tuple[BandSplitMasker, int, float, float]:
    """(model, step, elapsed seconds, best score) from ``run/last.safetensors``, or a fresh start."""
    last = run / "last.safetensors"
    if not last.is_file():
        torch.manual_seed(cfg.seed)
        return BandSplitMasker(cfg.model), 0, 0.0, -math.inf
    from melisma.formats import safetensors_metadata

    state = json.loads(safetensors_metadata(last, "separator-weights")["card"])
    model = load_separator(last).train()
    if model.cfg != cfg.model:
        raise MelismaError(f"{last}: was trained with another model config; use a new run folder")
    return model, int(state["step"]), float(state["elapsed_s"]), float(state["best"])


def train_separator(data_dirs: Sequence[str | os.PathLike], run_dir: str | os.PathLike,
                    cfg: TrainConfig = TrainConfig(), log: Callable[[str], None] = print) -> Path:
    """Train until ``cfg.minutes`` of wall clock; returns ``run_dir/best.safetensors``."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    songs = [s for d in data_dirs for s in load_separation_data(d)]
    refuse_held_out_songs(songs, ", ".join(map(str, data_dirs)))
    if len(songs) <= cfg.val_songs:
        raise MelismaError(f"separator training needs more than {cfg.val_songs} songs (have {len(songs)})")
    stems = load_stems(songs)
    train, val = stems[: -cfg.val_songs], stems[-cfg.val_songs:]
    model, step, elapsed, best = _resume(run, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    rng = np.random.default_rng([cfg.seed, step])
    history = _read_history(run)
    t0 = time.time() - elapsed
    log(f"separator: {len(train)} training songs, {len(val)} validation, from step {step}")
    while True:
        elapsed = time.time() - t0
        done = elapsed >= cfg.minutes * 60
        if step % cfg.val_every == 0 or done:
            best = _checkpoint(model, run, cfg, step, elapsed, best, validate(model, val), history, log)
        if done:
            break
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step, elapsed)
        mix, vocal, _ = sample_batch(train, cfg, rng)
        loss = separation_loss(model, mix, vocal)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            history.append({"step": step, "seconds": round(elapsed), "loss": round(loss.item(), 4)})
    return run / "best.safetensors"


def _read_history(run: Path) -> list[dict]:
    path = run / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _checkpoint(model, run: Path, cfg: TrainConfig, step: int, elapsed: float, best: float, scores: dict,
                history: list, log) -> float:
    """Write last (and best, when the validation score rose); returns the best score so far."""
    score = scores["vocal_si_sdr"] + scores["accompaniment_si_sdr"]
    history.append({"step": step, "seconds": round(elapsed), **scores})
    card = {"step": step, "elapsed_s": round(elapsed, 1), "train": asdict(cfg), **scores}
    if score > best:
        best = score
        save_separator(model, run / "best.safetensors", {**card, "best": best})
    save_separator(model, run / "last.safetensors", {**card, "best": best})
    write_text_atomic(run / "history.json", json.dumps(history, indent=1))
    log(f"separator step {step} ({elapsed / 60:.1f} min): vocal {scores['vocal_si_sdr']:.2f} dB, "
        f"accompaniment {scores['accompaniment_si_sdr']:.2f} dB SI-SDR")
    return best


def foundation_separator(corpus_dirs: Sequence[str | os.PathLike], run_dir: str | os.PathLike, n_songs: int = 240,
                         song_s: float = 10.0, data_seed: int = 0, cfg: TrainConfig = TrainConfig(),
                         log: Callable[[str], None] = print) -> Path:
    """The recipe: make ``run_dir/data`` from the corpora's sung clips (unless it is there), then train on it.

    Corpora are read through ``trainable_clips``, which refuses held-out voices.  Returns the best weights.
    Refused under torchrun (several processes would each train and write their own copy).
    """
    from melisma.corpus.heldout import trainable_clips
    from melisma.separation.data import build_separation_data
    from melisma.training.distributed import refuse_world

    refuse_world("the separator recipe")

    data = Path(run_dir) / "data"
    if not data.is_dir():
        t0 = time.time()
        build_separation_data(data, trainable_clips(corpus_dirs), n_songs, seed=data_seed, duration_s=song_s, log=log)
        log(f"separation data: {n_songs} songs in {time.time() - t0:.0f} s")
    return train_separator([data], run_dir, cfg, log)
