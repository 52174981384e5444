"""Training of the one-shot model (``melisma.oneshot``): VQMIVC on melisma's singer model, kept apart from inference.

Per update, on random 128-frame segments of every voice of the corpora (speech and WORLD-sung):
  recon   the decoder's EDM loss on the residual mel - prior + L1 of its prior to the mel; the decoder sees the
          content codes of a (randomly pitch-shifted, input-side) copy of the segment, the embedding of its
          normalised log-F0, the absolute F0, loudness and the speaker embedding of *another* clip of the voice
  cpc     VQ-CPC: InfoNCE of predicting the quantised codes 1..K frames ahead from a GRU context
  vq      codebook + commitment loss; ``perplexity`` of the codes used
  mi      CLUB upper bounds of I(content; speaker), I(content; pitch), I(speaker; pitch), each added with
          ``mi_weight`` when switched on (``use_csmi``, ``use_cpmi``, ``use_psmi``); the estimators themselves
          are trained every update on detached features (their negative log-likelihood: ``lld_*``)
  spk_id  a cosine classifier over the training voices on the speaker embedding (training only; not VQMIVC's)
Then the decoder's denoiser is distilled into a one-step consistency student (the encoder side frozen), as
``melisma train`` does. The decoder starts from the shipped base singer model unless ``from_base`` is off.

Run:  melisma foundation oneshot CORPUS [CORPUS ...] --run DIR --max-minutes 35 [--ship FILE]
Corpora are read by ``trainable_clips``: held-out voices are refused. Interrupt any time; the same command resumes.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from melisma.atomic import atomic_path, write_text_atomic
from melisma.corpus import ClipRecord, trainable_clips
from melisma.errors import MelismaError
from melisma.features.cache import FeatureCache
from melisma.oneshot.model import CLUB, OneShotConfig, OneShotNet, frames_of
from melisma.oneshot.weights import save_oneshot
from melisma.progress import say
from melisma.singer.consistency import distillation_loss, ema_update, one_step_loss
from melisma.singer.edm import edm_loss
from melisma.singer.model import SingerNet, denormalise_mel, masked_mean, prior_loss
from melisma.singer.voicepack import load_pack
from melisma.training.distributed import refuse_world
from melisma.training.singer import training_features
from melisma.training.singer_data import MIN_PIECE_FRAMES, ClipFeatures, sample_batch
from melisma.training.singer_data import Batch as Segments

MI_PAIRS = ("cs", "cp", "ps")  # content-speaker, content-pitch, speaker-pitch
RESTART_EVERY = 100  # updates between restarts of unused codes


@dataclass(frozen=True)
class OneShotTrainConfig:
    """Hyper-parameters of a run (those that change the result; ``max_minutes`` may differ on resume)."""

    teacher_steps: int = 6000
    distill_steps: int = 3000
    batch_size: int = 8
    segment_frames: int = 128
    ref_frames: int = 192  # reference crop for the speaker encoder (2.2 s)
    lr: float = 5e-4
    student_lr: float = 1e-4
    club_lr: float = 1e-3
    use_csmi: bool = True
    use_cpmi: bool = True
    use_psmi: bool = True
    mi_weight: float = 0.01  # VQMIVC's weight of the MI terms
    mi_frames: int = 256  # frames sampled per update for the CLUB estimators
    cpc_weight: float = 1.0
    vq_weight: float = 1.0
    prior_weight: float = 1.0
    speaker_id_weight: float = 0.1
    teacher_ema_decay: float = 0.995
    ema_decay: float = 0.95
    one_step_weight: float = 0.1
    loudness_jitter_db: float = 6.0
    pitch_shifts: tuple[float, ...] = (-6.0, -3.0, 3.0, 6.0)
    teacher_share: float = 0.6  # of max_minutes, for the teacher phase
    from_base: bool = True
    log_every: int = 25
    seed: int = 0
    model: OneShotConfig = field(default_factory=OneShotConfig)
    max_minutes: float = 35.0
    checkpoint_minutes: float = 2.0

    def mi_on(self, pair: str) -> bool:
        return bool(getattr(self, f"use_{pair}mi"))


@dataclass
class Data:
    """Training clips (``ClipFeatures.singer`` = the clip's index), the voice of each, the clips of each voice."""

    clips: list[ClipFeatures]
    voice_of: list[int]
    voices: list[str]
    by_voice: dict[int, list[int]]


def load_data(records: list[ClipRecord], cache_dir: Path, cfg: OneShotTrainConfig,
              content_encoder: torch.nn.Module | None) -> tuple[Data, Data, str]:
    """(train, validation: one sung clip per voice, content identity) of ``records`` (from ``trainable_clips``)
    through the feature cache in ``cache_dir``."""
    voices = sorted({r.voice for r in records})
    if len(voices) < 2:
        raise MelismaError(f"a one-shot model needs at least two voices, found {len(voices)}")
    extractor = training_features("builtin", pitch_shifts=cfg.pitch_shifts, from_scratch=True,
                                  content_encoder=content_encoder)
    cache = FeatureCache(cache_dir, extractor)
    parts: dict[bool, list[tuple[ClipFeatures, int]]] = {True: [], False: []}
    seen: set[int] = set()
    from melisma.progress import track

    for rec in track(records, "features"):
        v = voices.index(rec.voice)
        for piece in cache.get(rec.audio_path):
            if piece.frames < max(MIN_PIECE_FRAMES, cfg.segment_frames // 2):
                continue
            is_val = v not in seen and rec.kind == "sung"
            if is_val:
                seen.add(v)
            parts[not is_val].append((ClipFeatures.of(piece, 0), v))
    return _data(parts[True], voices), _data(parts[False] or parts[True], voices), str(extractor.settings()["content"])


def _data(items: list[tuple[ClipFeatures, int]], voices: list[str]) -> Data:
    clips, voice_of = [], []
    by_voice: dict[int, list[int]] = defaultdict(list)
    for i, (c, v) in enumerate(items):
        c.singer = i
        clips.append(c)
        voice_of.append(v)
        by_voice[v].append(i)
    return Data(clips, voice_of, voices, dict(by_voice))


@dataclass
class Batch:
    """The singer-data batch plus voice indices (B,), reference log-mel (B, 128, R) and its mask (B, 1, R)."""

    seg: Segments
    voice: torch.Tensor
    ref: torch.Tensor
    ref_mask: torch.Tensor


def make_batch(data: Data, cfg: OneShotTrainConfig, gen: torch.Generator, augment: bool = True) -> Batch:
    seg = sample_batch(data.clips, cfg.batch_size, cfg.segment_frames, gen,
                       cfg.loudness_jitter_db if augment else 0.0, augment)
    voice = torch.tensor([data.voice_of[int(i)] for i in seg.singers])
    refs, masks = zip(*(_reference(data, int(v), cfg.ref_frames, gen, augment) for v in voice), strict=True)
    return Batch(seg, voice, torch.stack(refs), torch.stack(masks))


def _reference(data: Data, voice: int, frames: int, gen: torch.Generator, augment: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random crop of a random clip of ``voice`` -> (log-mel (128, frames) padded with the floor, mask)."""
    pool = data.by_voice[voice]
    clip = data.clips[pool[int(torch.randint(0, len(pool), (1,), generator=gen))]]
    start = int(torch.randint(0, max(1, clip.frames - frames + 1), (1,), generator=gen))
    mel = denormalise_mel(clip.mel[:, start:start + frames])
    if augment:  # a reference's level must not matter
        mel = mel + float(torch.empty(1).uniform_(-6.0, 6.0, generator=gen)) * math.log(10.0) / 20.0
    n = mel.shape[-1]
    from melisma.oneshot.model import speech_mask

    mask = speech_mask(mel[None])[0]
    pad = frames - n
    return F.pad(mel, (0, pad), value=math.log(1e-5)), F.pad(mask, (0, pad))


class Estimators(nn.Module):
    """The three CLUB estimators and the training-only speaker-ID classifier."""

    def __init__(self, cfg: OneShotConfig, n_voices: int) -> None:
        super().__init__()
        self.club = nn.ModuleDict({"cs": CLUB(cfg.speaker_dim, cfg.code_dim), "cp": CLUB(cfg.pitch_dim, cfg.code_dim),
                                   "ps": CLUB(cfg.speaker_dim, cfg.pitch_dim)})
        self.voice_id = nn.Parameter(torch.randn(n_voices, cfg.speaker_dim) * 0.1)

    def estimator(self, pair: str) -> CLUB:
        club = self.club[pair]
        assert isinstance(club, CLUB)
        return club

    def pairs(self, codes: torch.Tensor, pitch: torch.Tensor, spk: torch.Tensor, mask: torch.Tensor, n: int
              ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) rows of each pair on ``n`` random valid frames: codes/pitch (B, D, T), spk (B, S), mask (B,1,T)."""
        t = codes.shape[-1]
        valid = torch.nonzero(mask.reshape(-1) > 0).reshape(-1)
        pick = valid[torch.randperm(valid.numel())[:n]]
        c, p, s = frames_of(codes, pick=pick), frames_of(pitch, pick=pick), frames_of(spk, t, pick)
        # about unit spread per dimension, as the estimators' bounded log-variance (tanh: e^-1..e) needs: codes
        # and speaker embeddings are unit vectors, the pitch embedding has a learned scale
        c, s = c * math.sqrt(c.shape[1]), s * math.sqrt(s.shape[1])
        p = p / (p.detach().std() + 1e-5)
        return {"cs": (s, c), "cp": (p, c), "ps": (s, p)}

    def speaker_id_loss(self, spk: torch.Tensor, voice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = 10.0 * spk @ F.normalize(self.voice_id, dim=-1).T
        return F.cross_entropy(logits, voice), (logits.argmax(-1) == voice).float().mean()


def init_decoder(cfg: OneShotConfig, role: str, from_base: bool) -> SingerNet:
    """The decoder (a SingerNet with a speaker input), from the shipped base pack's ``role`` (student or teacher)
    where shapes agree: its content projection (other width) and speaker projection start fresh, its single
    singer embedding at the base's mean."""
    net = SingerNet(cfg.singer)
    if not from_base:
        return net
    from melisma.paths import BASE_PACK

    base = load_pack(BASE_PACK)
    src = base.student if role == "student" or base.teacher is None else base.teacher
    state = net.state_dict()
    for k, v in src.items():
        if k == "encoder.singer.weight":
            state[k] = v.mean(0, keepdim=True)
        elif k in state and state[k].shape == v.shape:
            state[k] = v
    # the base voice to start with: the speaker input adds nothing until training gives it weight
    state["encoder.speaker_proj.weight"] = torch.zeros_like(state["encoder.speaker_proj.weight"])
    net.load_state_dict(state)
    if base.config.sigma_data != cfg.singer.sigma_data or base.config.hidden != cfg.singer.hidden:
        raise MelismaError("the base singer model's sizes differ from the one-shot decoder's; use --from-scratch")
    return net


class OneShotTrainer:
    """Teacher side (the whole OneShotNet) and its average, the student decoder and its EMA target, estimators."""

    def __init__(self, cfg: OneShotTrainConfig, train: Data, val: Data) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg, self.train, self.val = cfg, train, val
        self.net = OneShotNet(cfg.model)
        self.net.decoder.load_state_dict(init_decoder(cfg.model, "teacher", cfg.from_base).state_dict())
        self.avg = copy.deepcopy(self.net).requires_grad_(False)
        self.student = init_decoder(cfg.model, "student", cfg.from_base)
        self.ema = copy.deepcopy(self.student).requires_grad_(False)
        self.est = Estimators(cfg.model, len(train.voices))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.phase, self.step, self.elapsed = "teacher", 0, 0.0
        self.opt = self._optimizer()
        self.est_opt = torch.optim.Adam(self.est.club.parameters(), lr=cfg.club_lr)
        self.code_use = torch.zeros(cfg.model.n_codes)

    @torch.no_grad()
    def restart_codes(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        """Codes unused over the last ``RESTART_EVERY`` updates (all of them at the first) move onto random
        pre-quantisation vectors of this batch: a codebook never collapses onto a few codes."""
        self.code_use += torch.bincount(idx.flatten(), minlength=self.code_use.numel()).float()
        if self.step % RESTART_EVERY and self.step:
            return
        dead = torch.nonzero(self.code_use == 0).reshape(-1) if self.step else torch.arange(self.code_use.numel())
        rows = z.reshape(-1, z.shape[-1])
        pick = torch.randint(0, rows.shape[0], (dead.numel(),), generator=self.gen)
        book = self.net.head.vq.codebook
        book[dead] = rows[pick] + 0.01 * torch.randn(dead.numel(), rows.shape[1], generator=self.gen)
        self.avg.head.vq.codebook[dead] = book[dead]
        self.code_use.zero_()

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.phase == "teacher":
            params = list(self.net.parameters()) + [self.est.voice_id]
            return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=0.0)
        self.student.encoder.requires_grad_(False)  # one prior: the teacher's encoder, frozen
        return torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad], lr=self.cfg.student_lr)

    def encode(self, net: OneShotNet, b: Batch):
        """Codes, pitch embedding, speaker embedding and the decoder's condition of a batch."""
        s = b.seg
        codes = net.head(s.content)
        pitch = net.pitch(s.f0)
        spk = net.speaker(b.ref, b.ref_mask)
        ones = torch.ones(s.f0.shape[0], 1)
        cond = net.decoder.condition(net.decoder_input(codes.q, pitch), s.f0, s.loudness, ones, spk)
        return codes, pitch, spk, cond

    def teacher_step(self) -> dict[str, float]:
        cfg, b = self.cfg, make_batch(self.train, self.cfg, self.gen)
        self.net.train()
        if self.step == 0:
            with torch.no_grad():
                first = self.net.head(b.seg.content)
            self.restart_codes(first.z, first.idx)
        codes, pitch, spk, cond = self.encode(self.net, b)
        pairs = self.est.pairs(codes.q, pitch, spk, b.seg.mask, cfg.mi_frames)
        row = self._update_estimators(pairs)
        edm = edm_loss(self.net.decoder, b.seg.mel, cond, b.seg.mask, self.gen)
        recon = prior_loss(cond, b.seg.mel, b.seg.mask)
        cpc, cpc_acc = self.net.head.cpc_loss(codes)
        spk_id, spk_acc = self.est.speaker_id_loss(spk, b.voice)
        loss = edm + cfg.prior_weight * recon + cfg.cpc_weight * cpc + cfg.vq_weight * codes.vq_loss
        loss = loss + cfg.speaker_id_weight * spk_id
        for pair in MI_PAIRS:
            mi = self.est.estimator(pair).mi(*pairs[pair])
            row[f"mi_{pair}"] = float(mi.detach())
            if cfg.mi_on(pair):
                loss = loss + cfg.mi_weight * mi
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.opt.param_groups for p in g["params"]]
        nn.utils.clip_grad_norm_(params, 1.0)
        self.opt.step()
        ema_update(self.avg, self.net, cfg.teacher_ema_decay)
        self.restart_codes(codes.z.detach(), codes.idx)
        used = torch.bincount(codes.idx.flatten(), minlength=cfg.model.n_codes).float()
        p = used / used.sum()
        row.update(loss=float(loss.detach()), edm=float(edm.detach()), recon=float(recon.detach()),
                   cpc=float(cpc.detach()), cpc_acc=float(cpc_acc), vq=float(codes.vq_loss.detach()),
                   perplexity=float(torch.exp(-(p * (p + 1e-9).log()).sum())), spk_id=float(spk_id.detach()),
                   spk_acc=float(spk_acc))
        return row

    def _update_estimators(self, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """One step of every CLUB on detached features (VQMIVC's mi_iters = 1) -> their lld losses."""
        losses = {k: self.est.estimator(k).learning_loss(x.detach(), y.detach()) for k, (x, y) in pairs.items()}
        self.est_opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()  # type: ignore[union-attr]
        self.est_opt.step()
        self.est.club.zero_grad(set_to_none=True)
        return {f"lld_{k}": float(v.detach()) for k, v in losses.items()}

    def distill_step(self) -> dict[str, float]:
        b = make_batch(self.train, self.cfg, self.gen)
        self.student.train()
        with torch.no_grad():
            _, _, _, cond = self.encode(self.avg, b)
        teacher = self.avg.decoder
        loss = distillation_loss(self.student, self.ema, teacher, b.seg.mel, cond, cond, cond, b.seg.mask,
                                 generator=self.gen)
        one = one_step_loss(self.student, b.seg.mel, cond, b.seg.mask, self.gen)
        total = loss + self.cfg.one_step_weight * one
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_([p for p in self.student.parameters() if p.requires_grad], 1.0)
        self.opt.step()
        ema_update(self.ema, self.student, self.cfg.ema_decay)
        return {"loss": float(total.detach()), "distill": float(loss.detach()), "one_step": float(one.detach())}

    def next_phase(self) -> None:
        if self.phase == "teacher":
            self.net.load_state_dict(self.avg.state_dict())
            self.student.encoder.load_state_dict(self.avg.decoder.encoder.state_dict())
            self.ema.load_state_dict(self.student.state_dict())
            self.phase, self.step = "distill", 0
            self.opt = self._optimizer()
        else:
            self.phase = "done"

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Prior L1 (teacher phase) or one-step student mel L1 (natural-log units) on fixed validation segments."""
        from melisma.singer.consistency import consistency_sample

        gen = torch.Generator().manual_seed(1234)
        b = make_batch(self.val, replace(self.cfg, batch_size=16), gen, augment=False)
        _, _, _, cond = self.encode(self.avg, b)
        pred = cond.prior if self.phase == "teacher" else consistency_sample(self.ema, cond, cond.prior.shape[1], 1, gen)
        key = "val_prior_l1" if self.phase == "teacher" else "val_mel_l1"
        return {key: float(masked_mean((denormalise_mel(pred) - denormalise_mel(b.seg.mel)).abs(), b.seg.mask))}

    def shipped(self) -> OneShotNet:
        """The network a conversion uses: the averaged encoder side with the student's decoder."""
        net = copy.deepcopy(self.avg)
        if self.phase != "teacher":
            net.decoder.load_state_dict(self.ema.state_dict())
        return net.eval()

    # --- checkpoints -----------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net, "avg": self.avg, "student": self.student, "ema": self.ema, "est": self.est}

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"{name}.{k}": v for name, m in self.modules().items() for k, v in m.state_dict().items()}
        for tag, opt in (("opt", self.opt), ("est_opt", self.est_opt)):
            for pid, st in opt.state_dict()["state"].items():
                tensors.update({f"{tag}.{pid}.{k}": torch.as_tensor(v).clone() for k, v in st.items()})
        tensors["rng"] = self.gen.get_state()
        meta = {"phase": self.phase, "step": self.step, "elapsed": self.elapsed, "config": _config_json(self.cfg),
                "python_rng": json.dumps(random.getstate()[1][:5])}
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                      metadata={"melisma-oneshot-run": json.dumps(meta)})

    def load(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["melisma-oneshot-run"])
            t = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for a damaged file
            raise MelismaError(f"{path}: not a one-shot training checkpoint ({str(exc)[:80]}); use --restart") from None
        if meta["config"] != _config_json(self.cfg):
            raise MelismaError(f"{path}: this run was started with other settings; use the same options or --restart")
        for name, m in self.modules().items():
            m.load_state_dict({k[len(name) + 1:]: v for k, v in t.items() if k.startswith(name + ".")})
        self.phase, self.step, self.elapsed = meta["phase"], int(meta["step"]), float(meta["elapsed"])
        if self.phase != "teacher":
            self.opt = self._optimizer()
        for tag, opt in (("opt", self.opt), ("est_opt", self.est_opt)):
            state = opt.state_dict()
            groups: dict[int, dict] = {}
            for k, v in t.items():
                if k.startswith(tag + "."):
                    _, pid, name = k.split(".", 2)
                    groups.setdefault(int(pid), {})[name] = v
            state["state"] = groups
            opt.load_state_dict(state)
        self.gen.set_state(t["rng"])


def _config_json(cfg: OneShotTrainConfig) -> str:
    d = asdict(cfg)
    d.pop("max_minutes")
    d.pop("checkpoint_minutes")
    return json.dumps(d, sort_keys=True, default=str)


class RunLog:
    """log.jsonl: one row per ``every`` updates, the mean of each loss over them; rewritten atomically."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every
        self.lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
        self.rows: dict[str, list[float]] = defaultdict(list)

    def add(self, phase: str, step: int, row: dict[str, float], minutes: float) -> dict[str, float] | None:
        for k, v in row.items():
            self.rows[k].append(v)
        if step % self.every:
            return None
        mean = {k: round(float(np.mean(v)), 5) for k, v in self.rows.items()}
        self.rows.clear()
        self.write({"phase": phase, "step": step, "minutes": round(minutes, 2), **mean})
        return mean

    def truncate(self, phase: str, step: int) -> None:
        """Drop the rows a killed run logged after the checkpoint it resumes from."""
        order = {"teacher": 0, "distill": 1, "done": 2}
        here = (order[phase], step)
        self.lines = [ln for ln in self.lines if (order.get(json.loads(ln)["phase"], 2), json.loads(ln)["step"]) <= here]
        write_text_atomic(self.path, "".join(self.lines))

    def write(self, row: dict) -> None:
        self.lines.append(json.dumps(row) + "\n")
        write_text_atomic(self.path, "".join(self.lines))


def train_oneshot(corpora: list[str | Path], run_dir: str | Path, cfg: OneShotTrainConfig | None = None, *,
                  content_encoder: torch.nn.Module | None = None, restart: bool = False,
                  ship: str | Path | None = None) -> Path:
    """Train (or resume) the one-shot model on ``corpora`` into ``run_dir/oneshot.safetensors``; returns its path.

    ``content_encoder``: the content encoder the model is built on (default: the shipped ``builtin``); its
    identity is recorded in the weights. Raises MelismaError before training for a corpus holding a held-out
    voice, fewer than two voices, or when started as several processes."""
    from melisma.singer.convert import default_component
    from melisma.training.singer_base import check_ship_path

    refuse_world("the one-shot recipe")
    cfg = cfg or OneShotTrainConfig()
    if ship is not None:
        check_ship_path(ship)
    records = trainable_clips([Path(c) for c in corpora])  # refuses held-out voices before anything is written
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    enc = content_encoder if content_encoder is not None else default_component("content", "builtin")
    train, val, content_id = load_data(records, run / "features", cfg, enc)
    cfg = replace(cfg, model=replace(cfg.model, content_dim=int(train.clips[0].content.shape[1])))
    say(f"{len(train.clips)} training clips of {len(train.voices)} voices, {len(val.clips)} for validation")
    trainer = OneShotTrainer(cfg, train, val)
    checkpoint = run / "checkpoint.safetensors"
    if restart:
        checkpoint.unlink(missing_ok=True)
        (run / "log.jsonl").unlink(missing_ok=True)
    log = RunLog(run / "log.jsonl", cfg.log_every)
    if checkpoint.exists():
        trainer.load(checkpoint)
        log.truncate(trainer.phase, trainer.step)
        say(f"resuming at {trainer.phase} step {trainer.step}")
    _loop(trainer, checkpoint, log)
    vocoder = default_component("vocoder", "builtin")
    info = {"steps": trainer.step, "voices": len(train.voices), "clips": len(train.clips),
            "minutes": round(trainer.elapsed / 60, 1), "config": json.loads(_config_json(cfg))}
    out = save_oneshot(trainer.shipped(), run / "oneshot.safetensors", content_id, str(vocoder.identity), info)
    if ship is not None:
        from melisma.atomic import copy_atomic

        copy_atomic(out, ship)
    say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def _loop(tr: OneShotTrainer, checkpoint: Path, log: RunLog) -> None:
    cfg = tr.cfg
    t0, elapsed0, saved = time.monotonic(), tr.elapsed, time.monotonic()
    try:
        while tr.phase != "done":
            tr.elapsed = elapsed0 + time.monotonic() - t0
            share = cfg.teacher_share if tr.phase == "teacher" else 1.0
            steps = cfg.teacher_steps if tr.phase == "teacher" else cfg.distill_steps
            if tr.step >= steps or (cfg.max_minutes > 0 and tr.elapsed >= share * cfg.max_minutes * 60):
                log.write({"phase": tr.phase, "step": tr.step, "minutes": round(tr.elapsed / 60, 2), **tr.validate()})
                tr.next_phase()
                continue
            row = tr.teacher_step() if tr.phase == "teacher" else tr.distill_step()
            tr.step += 1
            mean = log.add(tr.phase, tr.step, row, tr.elapsed / 60)
            if mean is not None:
                say(f"{tr.phase} step {tr.step}  " + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()))
            if time.monotonic() - saved >= cfg.checkpoint_minutes * 60:
                tr.save(checkpoint)
                saved = time.monotonic()
    except KeyboardInterrupt:
        tr.elapsed = elapsed0 + time.monotonic() - t0
        tr.save(checkpoint)
        say(f"interrupted: checkpoint saved at {tr.phase} step {tr.step}; the same command continues")
        raise
    tr.save(checkpoint)

