"""Training of the builtin content encoder (kept apart from inference; see melisma.content.builtin).

Objective per step, on random 128-frame crops:
  recon  L1 between the clean log-mel and a decoder's output; the decoder sees the content of a
         *perturbed* copy (pitch, formant, EQ), the true F0, frame energy and a speaker embedding taken from
         another clip of the same voice, so the bottleneck only has to carry what is said/sung.
  nce    InfoNCE between the unit vectors of two differently perturbed views at the same frames
         (negatives: the other sampled frames of the batch).
  vq     codebook + commitment loss of the cosine VQ.
  phone  (``phone_weight`` > 0, the phonetic v2) cross-entropy of the phone head's logits on the content of
         a perturbed crop against the phone sounding at each frame, from the synthesiser's own phone timings
         (festival, flite; WORLD-sung clips carry them through their time map), mapped onto
         ``melisma.corpus.phones.SHARED_PHONES``: content has to carry what is said, in every voice alike.
  ctc    (``ctc_weight`` > 0) CTC of the same head on perturbed whole clips against their phones, for clips
         without timings. Measured: from builtin-v1, 556 steps did not leave CTC's all-blank plateau (PER 0.97),
         so the shipped v2 uses the frame term alone.
Run:  melisma foundation content --corpus DIR [DIR2 ...] -o FILE --minutes 40 [--phonetic --init V1.safetensors]
Corpora are melisma corpora (``melisma corpus build``), read by ``trainable_clips``: held-out voices are refused.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from melisma.atomic import write_text_atomic
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.content.builtin import BuiltinConfig, BuiltinNet, save_builtin
from melisma.content.perturb import PerturbConfig, perturb_magnitude
from melisma.corpus import ClipRecord, trainable_clips
from melisma.corpus.phones import SHARED_PHONES, SIL, frame_labels, shared_segments, to_shared
from melisma.errors import MelismaError
from melisma.features.mel import LOG_FLOOR, magnitude_stft, mel_basis
from melisma.features.pitch import model_pitch
from melisma.training.distributed import World, join_world


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run."""

    crop_frames: int = 128
    batch: int = 12
    lr: float = 2e-3
    nce_weight: float = 0.5
    nce_temperature: float = 0.1
    nce_frames: int = 384
    vq_weight: float = 1.0
    minutes: float = 40.0
    max_steps: int = 100_000
    log_every: int = 50  # steps per row of the loss log (the mean over those steps)
    seed: int = 0
    phone_weight: float = 0.0  # > 0: frame phone labels through a phone head (content v2, "phonetic")
    phone_batch: int = 8  # crops of clips with phone timings per step for the phone term
    ctc_weight: float = 0.0  # > 0: CTC through the phone head on whole clips without timings
    ctc_batch: int = 6  # whole clips per step for the CTC term
    ctc_max_frames: int = 900  # longer clips (10.4 s) are left out of the CTC batches


class ClipBank:
    """Clips held in memory as int16 audio with dio F0 (frames), grouped by voice."""

    def __init__(self, clips: list[ClipRecord], min_frames: int) -> None:
        from melisma.audio.io import load_audio

        self.audio: list[np.ndarray] = []
        self.f0: list[np.ndarray] = []
        self.voice: list[str] = []
        self.phones: list[np.ndarray] = []  # target indices into SHARED_PHONES, + 1 (0 is the CTC blank)
        self.labels: list[np.ndarray | None] = []  # per frame: the sounding phone's index (+ 1); None: no timings
        for clip in clips:
            x, _ = load_audio(clip.audio_path)
            if len(x) // HOP_SIZE + 1 < min_frames + 1:
                continue
            x = x / max(1e-4, float(np.abs(x).max())) * 0.5
            self.audio.append((x * 32767).astype(np.int16))
            self.f0.append(model_pitch().extract(x.astype(np.float32), SAMPLE_RATE))
            self.voice.append(clip.voice)
            self.phones.append(phone_targets(clip))
            self.labels.append(frame_targets(clip, len(self.f0[-1])))
        self.by_voice: dict[str, list[int]] = defaultdict(list)
        for i, v in enumerate(self.voice):
            self.by_voice[v].append(i)
        self.voices = sorted(self.by_voice)
        self.timed = {v: [i for i in idx if self.labels[i] is not None] for v, idx in self.by_voice.items()}

    def crop(self, i: int, frames: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        """Random crop of clip i -> (audio (frames-1)*HOP samples, f0 (frames,))."""
        n_fr = len(self.f0[i])
        s = rng.randint(0, n_fr - frames)
        a = self.audio[i][s * HOP_SIZE:(s + frames - 1) * HOP_SIZE].astype(np.float32) / 32767
        return a, self.f0[i][s:s + frames]


PHONE_INDEX = {p: i + 1 for i, p in enumerate(SHARED_PHONES)}  # phone -> its phone-head index (0: CTC blank)


def phone_targets(clip: ClipRecord) -> np.ndarray:
    """The clip's phones as CTC targets: indices into ``SHARED_PHONES`` plus one, silences dropped (CTC's
    blank covers them); empty when the corpus recorded no phones."""
    shared = to_shared(clip.phones, clip.phone_set) if clip.phones else []
    return np.array([PHONE_INDEX[p] for p in shared if p != SIL], dtype=np.int64)


def frame_targets(clip: ClipRecord, n: int) -> np.ndarray | None:
    """(n,) per-frame phone indices (into ``SHARED_PHONES``, + 1; silence is ``sil``) from the clip's phone
    timings; None when it has none."""
    from melisma.audio.constants import FRAME_RATE

    if not clip.phone_ends or len(clip.phone_ends) != len(clip.phones):
        return None
    labels = frame_labels(shared_segments(clip.phones, clip.phone_ends, clip.phone_set), n, FRAME_RATE)
    return np.array([PHONE_INDEX[p] for p in labels], dtype=np.int64)


class SpeakerEncoder(nn.Module):
    """Reference log-mel (B, 128, T) -> (B, dim) utterance-level timbre embedding (training only)."""

    def __init__(self, n_mels: int = 128, dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(n_mels, 192, 5, padding=2), nn.GELU(),
                                 nn.Conv1d(192, 192, 5, padding=2), nn.GELU(), nn.Conv1d(192, dim, 1))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net((mel + 6) / 2.5).mean(-1)


class Decoder(nn.Module):
    """content (B, C, T) + speaker (B, S) + pitch/energy (B, 3, T) -> log-mel (B, 128, T) (training only)."""

    def __init__(self, content_dim: int = 256, spk_dim: int = 128, channels: int = 256, n_mels: int = 128) -> None:
        super().__init__()
        self.inp = nn.Conv1d(content_dim + spk_dim + 3, channels, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv1d(channels, channels, 5, padding=2) for _ in range(4)])
        self.out = nn.Conv1d(channels, n_mels, 1)

    def forward(self, content: torch.Tensor, spk: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        spk = spk[:, :, None].expand(-1, -1, content.shape[-1])
        h = self.inp(torch.cat([content, spk, cond], 1))
        for conv in self.blocks:
            h = h + conv(F.gelu(h))
        return self.out(F.gelu(h)) * 2.5 - 6


def to_mel(mag: torch.Tensor) -> torch.Tensor:
    """(B, 1025, T) magnitude -> (B, 128, T) natural-log mel."""
    return torch.log((mel_basis() @ mag).clamp_min(LOG_FLOOR))


def info_nce(za: torch.Tensor, zb: torch.Tensor, n: int, tau: float) -> torch.Tensor:
    """za, zb (B, T, D) unit vectors of two views; same (b, t) = positive, other sampled frames = negatives."""
    a, b = za.reshape(-1, za.shape[-1]), zb.reshape(-1, zb.shape[-1])
    pick = torch.randperm(a.shape[0])[:n]
    logits = a[pick] @ b[pick].T / tau
    target = torch.arange(len(pick))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def make_batch(bank: ClipBank, cfg: TrainConfig, rng: random.Random) -> dict[str, torch.Tensor]:
    """Audio crops -> clean mel, two perturbed mels, pitch/energy condition, reference mel of the same voice."""
    audios, f0s, refs = [], [], []
    for _ in range(cfg.batch):
        voice = rng.choice(bank.voices)
        i = rng.choice(bank.by_voice[voice])
        a, f = bank.crop(i, cfg.crop_frames, rng)
        others = [j for j in bank.by_voice[voice] if j != i] or [i]
        refs.append(bank.crop(rng.choice(others), cfg.crop_frames, rng)[0])
        audios.append(a)
        f0s.append(f)
    mag = magnitude_stft(torch.from_numpy(np.stack(audios)))
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    clean = to_mel(mag)
    f0 = torch.from_numpy(np.stack(f0s))
    voiced = (f0 > 0).float()
    lf0 = torch.where(f0 > 0, (torch.log(f0.clamp_min(1)) - 5.3) / 0.5, torch.zeros_like(f0))
    energy = (clean.exp().mean(1).clamp_min(1e-5).log() + 6) / 3
    return {"clean": clean, "view_a": to_mel(perturb_magnitude(mag, PerturbConfig(), gen)),
            "view_b": to_mel(perturb_magnitude(mag, PerturbConfig(), gen)),
            "cond": torch.stack([lf0, voiced, energy], 1),
            "ref": to_mel(magnitude_stft(torch.from_numpy(np.stack(refs))))}


def make_ctc_batch(bank: ClipBank, cfg: TrainConfig, rng: random.Random) -> dict[str, torch.Tensor]:
    """Whole clips (one per randomly drawn voice) -> a perturbed log-mel (B, 128, T) zero-padded at the end,
    frames per clip, and their concatenated phone targets with lengths (``F.ctc_loss`` inputs)."""
    usable = {v: [i for i in idx if len(bank.phones[i]) and len(bank.f0[i]) <= cfg.ctc_max_frames]
              for v, idx in bank.by_voice.items()}
    voices = [v for v in bank.voices if usable[v]]
    picks = [rng.choice(usable[rng.choice(voices)]) for _ in range(cfg.ctc_batch)]
    n = max(len(bank.audio[i]) for i in picks)
    audio = np.zeros((len(picks), n), dtype=np.float32)
    for row, i in enumerate(picks):
        audio[row, :len(bank.audio[i])] = bank.audio[i].astype(np.float32) / 32767
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    mel = to_mel(perturb_magnitude(magnitude_stft(torch.from_numpy(audio)), PerturbConfig(), gen))
    return {"view": mel, "frames": torch.tensor([len(bank.audio[i]) // HOP_SIZE + 1 for i in picks]),
            "targets": torch.from_numpy(np.concatenate([bank.phones[i] for i in picks])),
            "target_lengths": torch.tensor([len(bank.phones[i]) for i in picks])}


def make_phone_batch(bank: ClipBank, cfg: TrainConfig, rng: random.Random) -> dict[str, torch.Tensor]:
    """Crops of clips with phone timings (one per randomly drawn timed voice) -> a perturbed log-mel
    (B, 128, crop_frames) and the phone index sounding at each frame (B, crop_frames)."""
    timed = bank.timed
    voices = [v for v in bank.voices if timed[v]]
    audios, labels = [], []
    for _ in range(cfg.phone_batch):
        i = rng.choice(timed[rng.choice(voices)])
        s = rng.randint(0, len(bank.f0[i]) - cfg.crop_frames)
        audios.append(bank.audio[i][s * HOP_SIZE:(s + cfg.crop_frames - 1) * HOP_SIZE].astype(np.float32) / 32767)
        labels.append(bank.labels[i][s:s + cfg.crop_frames])  # type: ignore[index]
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    mel = to_mel(perturb_magnitude(magnitude_stft(torch.from_numpy(np.stack(audios))), PerturbConfig(), gen))
    return {"view": mel, "labels": torch.from_numpy(np.stack(labels))}


class ContentTrainer(nn.Module):
    """Encoder + training-only speaker encoder and decoder; ``losses`` returns the loss terms."""

    def __init__(self, enc_cfg: BuiltinConfig | None = None) -> None:
        super().__init__()
        self.encoder = BuiltinNet(enc_cfg or BuiltinConfig())
        self.speaker = SpeakerEncoder()
        self.decoder = Decoder(self.encoder.cfg.dim)

    def ctc(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """CTC loss of the phone head on a ``make_ctc_batch`` batch, in nats per frame (log 83 = 4.4 at chance)."""
        content = self.encoder.encode(batch["view"])[1]
        logp = self.encoder.phone_logits(content).log_softmax(-1).transpose(0, 1)  # (T, B, P)
        nll = F.ctc_loss(logp, batch["targets"], batch["frames"], batch["target_lengths"], reduction="sum",
                         zero_infinity=True)
        return nll / batch["frames"].sum()

    def phone(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame cross-entropy of the phone head on a ``make_phone_batch`` batch, and its frame accuracy."""
        logits = self.encoder.phone_logits(self.encoder.encode(batch["view"])[1])  # (B, T, P)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1))
        return loss, (logits.argmax(-1) == batch["labels"]).float().mean()

    def losses(self, batch: dict[str, torch.Tensor], cfg: TrainConfig,
               ctc_batch: dict[str, torch.Tensor] | None = None,
               phone_batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        za, content, idx, vq_a = self.encoder.encode(batch["view_a"])
        zb, _, _, vq_b = self.encoder.encode(batch["view_b"])
        recon = F.l1_loss(self.decoder(content, self.speaker(batch["ref"]), batch["cond"]), batch["clean"])
        nce = info_nce(za, zb, cfg.nce_frames, cfg.nce_temperature)
        vq = 0.5 * (vq_a + vq_b)
        total = recon + cfg.nce_weight * nce + cfg.vq_weight * vq
        used = torch.bincount(idx.flatten(), minlength=self.encoder.cfg.n_codes).float()
        p = used / used.sum()
        perplexity = torch.exp(-(p * (p + 1e-9).log()).sum())
        terms = {"recon": recon, "nce": nce, "vq": vq, "perplexity": perplexity}
        if ctc_batch is not None:
            terms["ctc"] = self.ctc(ctc_batch)
            total = total + cfg.ctc_weight * terms["ctc"]
        if phone_batch is not None:
            terms["phone"], terms["phone_acc"] = self.phone(phone_batch)
            total = total + cfg.phone_weight * terms["phone"]
        return {"total": total, **terms}


def train(corpora: list[Path], out: Path, cfg: TrainConfig, log: Path | None = None,
          init: Path | None = None) -> dict[str, float]:
    """Train on the clips of ``corpora`` until ``cfg.minutes`` or ``cfg.max_steps``; save encoder to ``out``.

    ``cfg.ctc_weight`` > 0 trains the phonetic encoder (a phone head, CTC on every clip's phones).
    ``init``: start the encoder from these weights (e.g. builtin-v1 for the phonetic v2): every tensor of the
    file must fit the network; only a phone head the file lacks starts fresh.

    ``log``: JSON lines of the losses, one per ``cfg.log_every`` steps, rewritten atomically each time (this
    run's rows only: an older file is replaced).
    Under torchrun (N processes) each draws ``cfg.batch / N`` crops (and ``cfg.ctc_batch / N`` clips) per step
    with its own generators (seed + rank), gradients are averaged before the step, rank 0's clock decides the
    learning rate and the stop, and rank 0 alone writes ``out`` and ``log`` (rows averaged over the processes).
    Raises MelismaError before training when a corpus is unreadable or holds a held-out voice, or when a batch
    does not split over the processes.
    """
    world = join_world()
    local = _share(cfg, world)
    clips = trainable_clips(corpora)
    torch.manual_seed(cfg.seed + world.rank)  # rank 0 of 1: exactly cfg.seed; other ranks' weights are replaced
    rng = random.Random(cfg.seed + world.rank)
    bank = ClipBank(clips, cfg.crop_frames)
    phonetic = cfg.ctc_weight > 0 or cfg.phone_weight > 0
    model = ContentTrainer(BuiltinConfig(n_phones=len(SHARED_PHONES) + 1 if phonetic else 0))
    if init is not None:
        warm_start(model.encoder, init)
    world.broadcast_weights(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    start, step, hist, rows = time.time(), 0, defaultdict(list), []
    budget = cfg.minutes * 60
    info = {"processes": world.size}
    while step < cfg.max_steps:
        elapsed = world.from_main(time.time() - start)  # rank 0's clock: every process stops at the same step
        if elapsed >= budget:
            break
        frac = elapsed / budget
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        ctc_batch = make_ctc_batch(bank, local, rng) if cfg.ctc_weight > 0 else None
        phone_batch = make_phone_batch(bank, local, rng) if cfg.phone_weight > 0 else None
        terms = model.losses(make_batch(bank, local, rng), local, ctc_batch, phone_batch)
        opt.zero_grad()
        terms["total"].backward()
        world.average_gradients(model.parameters())
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        for k, v in terms.items():
            hist[k].append(float(v.detach()) if torch.is_tensor(v) else float(v))
        if log is not None and step % cfg.log_every == 0:
            row = {k: round(v, 4) for k, v in _mean_over(world, hist, cfg.log_every).items()}
            row.update(step=step, minutes=round((time.time() - start) / 60, 1))
            rows.append(json.dumps(row) + "\n")
            if world.main:
                write_text_atomic(log, "".join(rows))
        if step % 250 == 0 and world.main:
            _save(model.encoder, out, cfg, {"steps": step, **info})
    summary = _mean_over(world, hist, 100)
    summary.update(steps=step, clips=len(bank.audio), voices=len(bank.voices), **info)
    if world.main:
        _save(model.encoder, out, cfg, summary)
    world.leave()  # every process waits for rank 0's file, then the process group closes
    return summary


def _share(cfg: TrainConfig, world: World) -> TrainConfig:
    """This process's share of the batches (``cfg`` itself for one process); MelismaError when they do not
    split evenly over the processes."""
    ctc = cfg.ctc_batch if cfg.ctc_weight > 0 else 0
    phone = cfg.phone_batch if cfg.phone_weight > 0 else 0
    if cfg.batch % world.size or ctc % world.size or phone % world.size:
        raise MelismaError(f"batch {cfg.batch}" + (f" / CTC batch {ctc}" if ctc else "")
                           + (f" / phone batch {phone}" if phone else "")
                           + f" does not split over {world.size} processes; use a multiple")
    if not world.active:
        return cfg
    return replace(cfg, batch=cfg.batch // world.size, ctc_batch=max(1, cfg.ctc_batch // world.size),
                   phone_batch=max(1, cfg.phone_batch // world.size))


def _mean_over(world: World, hist: dict[str, list[float]], last: int) -> dict[str, float]:
    """Mean of each loss term over its ``last`` values, averaged over the processes (equal batch shares: the
    mean over the whole batch for the mean-reduced terms; the codebook perplexity is each share's, so it reads
    lower with more processes)."""
    mine = {k: float(np.mean(v[-last:])) for k, v in hist.items()}
    if not world.active:
        return mine
    every = world.gather(mine)
    return {k: float(np.mean([m[k] for m in every])) for k in mine}


def warm_start(encoder: BuiltinNet, path: Path) -> None:
    """Load ``path``'s encoder weights into ``encoder``; MelismaError unless they fit (a missing phone head is
    the one thing allowed: it starts fresh)."""
    from melisma.content.builtin import BuiltinContentEncoder

    state = BuiltinContentEncoder.load(path).net.state_dict()
    try:
        result = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise MelismaError(f"{path}: weights do not fit the encoder ({str(err).splitlines()[0]})") from None
    missing = [k for k in result.missing_keys if not k.startswith("phone_head.")]
    if missing or result.unexpected_keys:
        raise MelismaError(f"{path}: weights do not fit the encoder (missing {missing}, "
                           f"unexpected {result.unexpected_keys})")


def _save(encoder: BuiltinNet, out: Path, cfg: TrainConfig, info: dict) -> None:
    """Write the encoder with its settings and ``info`` in the metadata (its identity is its weights' hash)."""
    save_builtin(encoder, out, extra={"train": json.dumps({**asdict(cfg), **info})})
