"""Train a voice pack: EDM teacher, then consistency distillation into a one-step student (CoMoSVC scheme).

Crash-safe: the run folder (``VOICE_FILE.work/``) holds ``checkpoint.safetensors`` (weights, EMAs, optimiser
state, phase and step counters, and the generator that draws both data order and noise), rewritten atomically
every ``checkpoint_every`` steps and at least every ``checkpoint_minutes``; running the same command again
continues from it and ends with the same weights as a run never interrupted. Data-parallel under ``torchrun``
(``melisma.training.distributed``).  Logs: ``log.jsonl`` always,
TensorBoard (with audio previews) when the ``tensorboard`` package is installed.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from melisma.atomic import atomic_path, check_output_file, write_text_atomic
from melisma.errors import MelismaError
from melisma.features.extractor import FeatureExtractor
from melisma.formats import CURRENT, FormatError, check, safetensors_metadata, stamp
from melisma.identity import identity_matches
from melisma.paths import BASE_PACK
from melisma.progress import say, set_quiet
from melisma.singer.consistency import consistency_sample, distillation_loss, ema_update, one_step_loss
from melisma.singer.convert import default_component
from melisma.singer.edm import edm_loss
from melisma.singer.model import SingerConfig, SingerNet, denormalise_mel, masked_mean, prior_loss
from melisma.singer.voicepack import SingerStats, VoicePack, load_pack, read_header, save_pack
from melisma.training.distributed import World, join_world
from melisma.training.singer_data import ClipFeatures, list_clips, load_dataset, sample_batch

CHECKPOINT_VERSION = CURRENT["checkpoint"]  # the only version a run resumes from
BASE_MODEL = BASE_PACK  # fine-tuning starts from the shipped base multi-singer pack


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule and augmentation. Steps are optimizer updates of ``batch_size`` segments."""

    teacher_steps: int = 5000  # a 20-minute fine-tune on one core (benchmarks/singer_finetune.py)
    distill_steps: int = 2500
    batch_size: int = 8
    segment_frames: int = 128  # 1.5 s
    # Why each default is what it is, with the figures that chose it: singer-base.md (model card), "Findings".
    teacher_lr: float = 6e-4  # with a short (~200-step) average: 2e-4 with 0.999 lagged ~1000 steps behind
    student_lr: float = 1e-4
    ema_decay: float = 0.95  # consistency target network
    teacher_ema_decay: float = 0.995  # the teacher that is distilled and shipped is this average of its weights
    # extra content variants (semitones, resampled: pitch and formants move) for input-side augmentation; wider
    # shifts keep the source's timbre out of the content the model relies on
    pitch_shifts: tuple[float, ...] = (-6.0, -3.0, 3.0, 6.0)
    loudness_jitter_db: float = 6.0
    one_step_weight: float = 0.1  # the student's one-step L1 to the true mel beside distillation
    # EDM's sigma_data (teacher and student): the spread of the residual mel - prior that is diffused, about
    # 0.1; EDM's usual 0.5 made the fine-tune's teacher denoise worse than predicting no residual
    sigma_data: float = 0.1
    prior_weight: float = 1.0  # weight of the encoder's prior-mel L1 beside the teacher's EDM loss
    val_every: int = 250
    checkpoint_every: int = 100
    # and at least this often, whatever the speed: a crash loses at most this much work (not part of the
    # settings a resumed run must repeat)
    checkpoint_minutes: float = 2.0
    log_every: int = 25
    patience: int = 4  # validations without improvement before a phase stops early
    # 0 = no time limit; else stop, and write the pack, after this long: the wall time of every run of the command
    # together, feature extraction included
    max_minutes: float = 0.0
    seed: int = 0
    from_scratch: bool = False
    model: SingerConfig = field(default_factory=SingerConfig)


@dataclass
class RunState:
    phase: str = "teacher"  # teacher -> distill -> done
    step: int = 0  # within the phase
    best_val: float = math.inf
    bad_vals: int = 0
    elapsed_s: float = 0.0
    ran: dict[str, int] = field(default_factory=dict)  # updates that actually ran, per phase (for the pack)


class Logger:
    """JSON lines + optional TensorBoard."""

    def __init__(self, folder: Path, enabled: bool = True):
        self.path, self.enabled = folder / "log.jsonl", enabled
        # the whole log is rewritten atomically at each row, so a crash never leaves half a line; a resumed
        # run keeps the rows of the runs before it
        self.lines = self.path.read_text().splitlines(keepends=True) if self.path.is_file() else []
        self.tb = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(folder / "tensorboard"))
        except ImportError:
            pass

    def truncate(self, phase: str, step: int) -> None:
        """Drop the rows logged after the checkpoint a run resumes from (a killed run logged them, then lost
        the work): the log of a resumed run reads as one run."""
        order = {"teacher": 0, "distill": 1, "done": 2}
        here = (order.get(phase, 2), step)
        keep = [line for line in self.lines if _row_key(line, order) <= here]
        if len(keep) != len(self.lines) and self.enabled:
            self.lines = keep
            write_text_atomic(self.path, "".join(keep))

    def scalars(self, phase: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.lines.append(json.dumps({"phase": phase, "step": step, "time": time.time(), **values}) + "\n")
        write_text_atomic(self.path, "".join(self.lines))
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{phase}/{k}", v, step)

    def audio(self, tag: str, step: int, wave: torch.Tensor, sr: int) -> None:
        if self.tb is not None:
            self.tb.add_audio(tag, wave.clamp(-1, 1)[None], step, sample_rate=sr)


def _row_key(line: str, order: dict[str, int]) -> tuple[int, int]:
    try:
        row = json.loads(line)
        return order.get(row["phase"], 2), int(row["step"])
    except (ValueError, KeyError, TypeError):
        return -1, -1


class Trainer:
    """Holds teacher (and its weight average), student and its EMA target, the data and the optimizer of the
    running phase. When the teacher phase ends, the teacher's weights are replaced by their average.
    With ``world`` of several processes, each draws ``batch_size / world.size`` segments per update and the
    gradients are averaged (``melisma.training.distributed``)."""

    def __init__(self, cfg: TrainConfig, clips: list[ClipFeatures], val: list[ClipFeatures], run_dir: Path,
                 teacher: SingerNet, student: SingerNet, vocoder=None, student_from_base: bool = False,
                 world: World | None = None):
        self.cfg, self.clips, self.val, self.run_dir = cfg, clips, val, run_dir
        self.teacher, self.student = teacher, student
        self.ema = copy.deepcopy(student).requires_grad_(False)
        self.teacher_ema = copy.deepcopy(teacher).requires_grad_(False)
        self.vocoder = vocoder
        self.student_from_base = student_from_base  # else the student starts as a copy of the trained teacher
        self.state = RunState()
        self.world = world = world or World()
        self.gen = torch.Generator().manual_seed(cfg.seed + world.rank)  # rank 0 of 1: exactly cfg.seed
        self.opt = self._optimizer()
        self.log = Logger(run_dir, enabled=world.main)

    @property
    def _has_prior(self) -> bool:
        return self.cfg.model.prior_layers > 0

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.state.phase == "teacher":
            return torch.optim.AdamW(self.teacher.parameters(), lr=self.cfg.teacher_lr, weight_decay=0.0)
        # with a prior, the student keeps the teacher's encoder (so all three share one prior): only its
        # denoiser is distilled
        self.student.encoder.requires_grad_(not self._has_prior)
        params = [p for p in self.student.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.student_lr, weight_decay=0.0)

    # --- one update -------------------------------------------------------------------------------------
    def train_step(self) -> float:
        b = sample_batch(self.clips, self.cfg.batch_size // self.world.size, self.cfg.segment_frames, self.gen,
                         self.cfg.loudness_jitter_db)
        w = torch.nn.functional.one_hot(b.singers, self.cfg.model.n_singers).float()
        if self.state.phase == "teacher":
            self.teacher.train()
            cond = self.teacher.condition(b.content, b.f0, b.loudness, w)
            loss = edm_loss(self.teacher, b.mel, cond, b.mask, self.gen)
            if self._has_prior:
                loss = loss + self.cfg.prior_weight * prior_loss(cond, b.mel, b.mask)
        else:
            self.student.train()
            with torch.no_grad():
                t_cond = self.teacher.condition(b.content, b.f0, b.loudness, w)
                # with a prior the three share one frozen encoder: its condition is computed once
                e_cond = t_cond if self._has_prior else self.ema.condition(b.content, b.f0, b.loudness, w)
            s_cond = t_cond if self._has_prior else self.student.condition(b.content, b.f0, b.loudness, w)
            loss = distillation_loss(self.student, self.ema, self.teacher, b.mel, s_cond, t_cond, e_cond,
                                     b.mask, generator=self.gen)
            if self.cfg.one_step_weight > 0:
                loss = loss + self.cfg.one_step_weight * one_step_loss(self.student, b.mel, s_cond, b.mask,
                                                                       self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.teacher.parameters() if self.state.phase == "teacher" else self.student.parameters())
        self.world.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.opt.step()
        if self.state.phase == "distill":
            ema_update(self.ema, self.student, self.cfg.ema_decay)
        else:
            ema_update(self.teacher_ema, self.teacher, self.cfg.teacher_ema_decay)
        self.state.step += 1
        self.state.ran[self.state.phase] = self.state.ran.get(self.state.phase, 0) + 1
        return float(loss.detach())

    # --- validation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mel L1 (natural-log units) of a one-step student sample (distill) or of the teacher's denoising at
        noise level sigma_data (teacher) on the held-out segments, fixed noise so values compare across steps."""
        gen = torch.Generator().manual_seed(1234)
        b = sample_batch(self.val, min(8, 2 * len(self.val)), self.cfg.segment_frames * 2, gen, augment=False)
        w = torch.nn.functional.one_hot(b.singers, self.cfg.model.n_singers).float()
        net = self.teacher_ema if self.state.phase == "teacher" else self.ema
        net.eval()
        cond = net.condition(b.content, b.f0, b.loudness, w)
        if self.state.phase == "teacher":
            from melisma.singer.edm import edm_denoise

            level = net.cfg.sigma_data  # noise as large as the residual's spread
            sigma = torch.full((b.mel.shape[0],), level)
            residual = b.mel - cond.prior
            noisy = residual + level * torch.randn(b.mel.shape, generator=gen)
            pred = cond.prior + edm_denoise(net, noisy, sigma, cond.hidden)
        else:
            pred = consistency_sample(net, cond, self.cfg.model.n_mels, 1, gen)

        def l1(x: torch.Tensor) -> float:
            return float(masked_mean((denormalise_mel(x) - denormalise_mel(b.mel)).abs(), b.mask))

        values = {"val_mel_l1": l1(pred)}
        if self._has_prior:
            values["val_prior_l1"] = l1(cond.prior)
        if self.vocoder is not None and self.state.phase == "distill":
            values.update(self._audio_metrics(pred[:1], b.mel[:1], b.f0[:1]))
        return values

    def _audio_metrics(self, pred: torch.Tensor, target: torch.Tensor, f0: torch.Tensor) -> dict[str, float]:
        """Vocode the student's one-step mel and the ground truth; log a preview and score them with
        ``melisma.evaluate`` (speaker similarity to the vocoded truth, pitch error). {} if evaluation is absent."""
        from melisma.audio.constants import SAMPLE_RATE

        wave = self.vocoder(denormalise_mel(pred), f0)[0]
        ref = self.vocoder(denormalise_mel(target), f0)[0]
        self.log.audio("preview/student_1step", self.state.step, wave, SAMPLE_RATE)
        self.log.audio("preview/vocoded_truth", self.state.step, ref, SAMPLE_RATE)
        try:
            from melisma.evaluate import evaluate_clips, target_embedding_of

            clip, truth = (wave.numpy(), SAMPLE_RATE), (ref.numpy(), SAMPLE_RATE)
            res = evaluate_clips([clip], target_embedding=target_embedding_of([truth]), sources=[truth],
                                 metrics=("similarity", "pitch"))
            out = {k: res.mean(k) for k in ("target_similarity", "cents_error_mean")}
            return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}
        except (ImportError, MelismaError):
            return {}

    # --- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        """Write the whole run state atomically (rank 0; every process's generator is gathered into it). A failed
        write (full disk) raises a one-line MelismaError and leaves the previous checkpoint as it was."""
        from safetensors.torch import save_file

        gens = self.world.gather(self.gen.get_state())
        if not self.world.main:
            return
        tensors = {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}
        tensors.update({f"student.{k}": v for k, v in self.student.state_dict().items()})
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        tensors.update({f"teacher_ema.{k}": v for k, v in self.teacher_ema.state_dict().items()})
        for pid, st in self.opt.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"opt.{pid}.{k}"] = torch.as_tensor(v).clone()
        tensors["rng.gen"] = gens[0].clone()  # what a one-process run (and older melisma) reads
        tensors.update({f"rng.gen.{r}": g for r, g in enumerate(gens)})
        meta = {**stamp("checkpoint"), "state": asdict(self.state), "config": _config_json(self.cfg),
                "world_size": self.world.size}
        try:
            with atomic_path(path) as tmp:
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                          metadata={"melisma": json.dumps(meta)})
        except OSError as exc:
            kept = "the previous checkpoint is kept" if path.exists() else "no checkpoint was written yet"
            raise MelismaError(f"{path}: cannot write the checkpoint at {self.state.phase} step {self.state.step} "
                               f"({exc.strerror or exc}); {kept}, and the same command resumes from it") from None

    def load_checkpoint(self, path: Path) -> None:
        """Resume from ``path``; a file that is not this run's checkpoint is a one-line MelismaError."""
        meta = read_checkpoint_meta(path)
        if meta["config"] != _config_json(self.cfg):
            raise MelismaError(f"{path}: this run was started with other settings; use the same options, or "
                               "--restart to start over")
        t = _checkpoint_tensors(path)
        try:
            for prefix, net in (("teacher.", self.teacher), ("student.", self.student), ("ema.", self.ema),
                                ("teacher_ema.", self.teacher_ema)):
                net.load_state_dict({k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)},
                                    strict=True)
            self.state = RunState(**meta["state"])
            self.gen.set_state(self._generator_state(t, meta))
            self.opt = self._optimizer()
            opt_state = self.opt.state_dict()
            groups: dict[int, dict] = {}
            for k, v in t.items():
                if k.startswith("opt."):
                    _, pid, name = k.split(".", 2)
                    groups.setdefault(int(pid), {})[name] = v
            opt_state["state"] = groups
            self.opt.load_state_dict(opt_state)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise MelismaError(f"{path}: damaged checkpoint ({str(exc).splitlines()[0][:120]}); use --restart") from None
        self.log.truncate(self.state.phase, self.state.step)

    def _generator_state(self, t: dict[str, torch.Tensor], meta: dict) -> torch.Tensor:
        """This process's generator as saved; a process the saving run did not have starts a fresh stream."""
        if meta.get("world_size", 1) == self.world.size and f"rng.gen.{self.world.rank}" in t:
            return t[f"rng.gen.{self.world.rank}"]
        if self.world.rank == 0:
            return t["rng.gen"]
        return torch.Generator().manual_seed(self.cfg.seed + self.world.rank + 7919 * self.state.step).get_state()

    # --- the loop ---------------------------------------------------------------------------------------------
    def run(self, checkpoint: Path) -> None:
        total = {"teacher": self.cfg.teacher_steps, "distill": self.cfg.distill_steps}
        t0, step0, losses = time.monotonic(), self.state.step, []
        elapsed0, saved_at = self.state.elapsed_s, t0
        try:
            while self.state.phase != "done":
                if self.state.step >= total[self.state.phase] or self._out_of_time(elapsed0, t0):
                    self.state.elapsed_s = elapsed0 + time.monotonic() - t0  # the next phase's budget counts it
                    self._next_phase()
                    t0, step0, elapsed0 = time.monotonic(), 0, self.state.elapsed_s
                    continue
                losses.append(self.train_step())
                s = self.state.step
                if s % self.cfg.log_every == 0:
                    self._report(losses, s, total, (time.monotonic() - t0) / max(1, s - step0))
                    losses = []
                if s % self.cfg.val_every == 0:
                    self._validate_and_maybe_stop()
                overdue = time.monotonic() - saved_at >= self.cfg.checkpoint_minutes * 60.0
                if s % self.cfg.checkpoint_every == 0 or self.world.from_main(overdue):
                    self.state.elapsed_s = elapsed0 + time.monotonic() - t0
                    self.save_checkpoint(checkpoint)
                    saved_at = time.monotonic()
        except KeyboardInterrupt:
            self.state.elapsed_s = elapsed0 + time.monotonic() - t0
            self.save_checkpoint(checkpoint)
            say(f"interrupted: checkpoint saved at {self.state.phase} step {self.state.step}; run the same "
                "command again to continue")
            raise
        self.save_checkpoint(checkpoint)

    def _out_of_time(self, elapsed0: float, t0: float) -> bool:
        """Rank 0's clock decides for every process (no broadcast when there is no time limit)."""
        if self.cfg.max_minutes <= 0:
            return False
        budget = self.cfg.max_minutes * 60.0 * (0.6 if self.state.phase == "teacher" else 1.0)
        return bool(self.world.from_main(elapsed0 + time.monotonic() - t0 >= budget))

    def _report(self, losses: list[float], step: int, total: dict[str, int], sec_per_step: float) -> None:
        loss = sum(losses) / max(1, len(losses))
        left = total[self.state.phase] - step + (total["distill"] if self.state.phase == "teacher" else 0)
        eta = time.strftime("%H:%M:%S", time.gmtime(left * sec_per_step))
        say(f"{self.state.phase} step {step}/{total[self.state.phase]}  loss {loss:.4f}  "
            f"{1.0 / max(sec_per_step, 1e-9):.2f} steps/s  ETA {eta}")
        self.log.scalars(self.state.phase, step, {"loss": loss})

    def _validate_and_maybe_stop(self) -> None:
        vals = self.world.from_main(self.validate() if self.world.main else None)
        self.log.scalars(self.state.phase, self.state.step, vals)
        say("  validation: " + "  ".join(f"{k} {v:.4f}" for k, v in vals.items()))
        if vals["val_mel_l1"] < self.state.best_val - 1e-4:
            self.state.best_val, self.state.bad_vals = vals["val_mel_l1"], 0
        else:
            self.state.bad_vals += 1
            if self.state.bad_vals >= self.cfg.patience:
                say(f"  early stop of the {self.state.phase} phase (no improvement in {self.cfg.patience} "
                    "validations)")
                self.state.step = 10**9

    def _next_phase(self) -> None:
        if self.state.phase == "teacher":
            self.state = RunState(phase="distill", elapsed_s=self.state.elapsed_s, ran=self.state.ran)
            self.teacher.load_state_dict(self.teacher_ema.state_dict())
            if not self.student_from_base:
                self.student.load_state_dict(self.teacher.state_dict())
            elif self._has_prior:
                self.student.encoder.load_state_dict(self.teacher.encoder.state_dict())
            self.ema.load_state_dict(self.student.state_dict())
            self.opt = self._optimizer()
        else:
            self.state = replace(self.state, phase="done")


def _config_json(cfg: TrainConfig) -> str:
    d = asdict(cfg)
    d.pop("max_minutes")
    d.pop("checkpoint_minutes")
    return json.dumps(d, sort_keys=True)


def read_checkpoint_meta(path: Path) -> dict:
    """The metadata of a melisma training checkpoint, checked; one-line MelismaError for anything else (a
    foreign checkpoint, a voice pack, a file without melisma metadata, a damaged or older one)."""
    try:
        raw = safetensors_metadata(path, "checkpoint").get("melisma")
        meta = json.loads(raw) if raw is not None else None
        check(meta if isinstance(meta, dict) else {}, "checkpoint", path, oldest=CHECKPOINT_VERSION)
        assert meta is not None
        if not isinstance(meta.get("state"), dict) or not isinstance(meta.get("config"), str):
            raise FormatError(f"{path}: training checkpoint without its run state")
    except (ValueError, RecursionError):
        raise MelismaError(f"{path}: not a melisma training checkpoint (unreadable metadata); use --restart") from None
    except FormatError as exc:
        raise MelismaError(f"{exc}; use --restart") from None
    return meta


def _checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise MelismaError(f"{path}: damaged checkpoint ({str(exc)[:100]}); use --restart") from None


def _init_models(cfg: TrainConfig, content_identity: str, content_dim: int
                 ) -> tuple[TrainConfig, SingerNet, SingerNet, bool]:
    """Teacher and student, fine-tuned from the shipped base pack unless ``from_scratch`` (or none is shipped)."""
    model_cfg = replace(cfg.model, content_dim=content_dim, sigma_data=cfg.sigma_data)
    if not cfg.from_scratch and BASE_MODEL.is_file():
        base = load_pack(BASE_MODEL)
        if not identity_matches("content", base.content_encoder, content_identity):
            raise MelismaError(f"the base singer model expects content encoder {base.content_encoder!r}, not "
                               f"{content_identity!r}; use --from-scratch")
        model_cfg = replace(base.config, n_singers=cfg.model.n_singers, sigma_data=cfg.sigma_data)
        cfg = replace(cfg, model=model_cfg)
        teacher = _adapt(base.build_teacher() or base.build_student(), model_cfg)
        student = _adapt(base.build_student(), model_cfg)
        say(f"fine-tuning from the base singer model {BASE_MODEL.name}")
        return cfg, teacher, student, True
    if not cfg.from_scratch:
        say(f"no base singer model at {BASE_MODEL}: training from scratch")
    cfg = replace(cfg, model=model_cfg)
    torch.manual_seed(cfg.seed)
    teacher = SingerNet(model_cfg)
    return cfg, teacher, copy.deepcopy(teacher), False


def _adapt(base: SingerNet, cfg: SingerConfig) -> SingerNet:
    """Copy a base network into one with ``cfg.n_singers`` singers; new singers start at the base mean voice."""
    net = SingerNet(cfg)
    state = base.state_dict()
    emb = state["encoder.singer.weight"]
    state["encoder.singer.weight"] = emb.mean(0, keepdim=True).repeat(cfg.n_singers, 1)
    net.load_state_dict(state, strict=True)
    return net


def train_voice(datasets: list[tuple[str, Path]], output: str | os.PathLike, cfg: TrainConfig | None = None, *,
                content_encoder: torch.nn.Module | None = None, vocoder: torch.nn.Module | None = None,
                restart: bool = False, f0_method: str = "dio", keep_teacher: bool = True,
                content: str | None = None, feature_cache: Path | None = None) -> Path:
    """Train (or resume training) a voice pack for the singers ``datasets`` [(name, folder)]; returns its path.

    ``content`` names the content encoder (``builtin``, or the weight-free ``dsp-cepstral-v1``); by default the
    one the base pack expects when fine-tuning, else ``builtin``. ``content_encoder`` passes an instance instead.
    Features are cached in DATASET/cache (what ``melisma features`` fills), or in ``feature_cache``/NAME when
    given (and in OUTPUT.work/cache/NAME for a read-only dataset), so a repeated or resumed run reads them."""
    cfg = cfg or TrainConfig()
    names = [n for n, _ in datasets]
    if len(set(names)) != len(names):
        raise MelismaError(f"two datasets have the same singer name: {names}; use NAME=DIR to name them")
    cfg = replace(cfg, model=replace(cfg.model, n_singers=len(datasets)))
    out = check_output_file(output, "voice pack")  # an unwritable output is refused before any work
    for _, folder in datasets:
        list_clips(folder)  # every dataset must hold audio: fail before anything is written
    world = join_world()
    if not world.main:
        set_quiet(True)  # one process speaks
    if cfg.batch_size % world.size:
        raise MelismaError(f"batch size {cfg.batch_size} does not split over {world.size} processes; use a multiple")
    extractor = training_features(content, f0_method, cfg.pitch_shifts, cfg.from_scratch, content_encoder)
    enc = extractor.content_encoder
    identity, dim = str(getattr(enc, "identity", "")), getattr(enc, "dim", None)
    if vocoder is None:
        try:
            vocoder = default_component("vocoder", "builtin")
        except MelismaError:
            vocoder = None
    run_dir = out.with_name(out.name + ".work")
    checkpoint = run_dir / "checkpoint.safetensors"
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.tmp"):  # temporary files of writes a kill -9 interrupted
            stale.unlink(missing_ok=True)
        if restart and checkpoint.exists():
            checkpoint.unlink()
    say(f"features of {len(datasets)} dataset(s)")
    started = time.monotonic()
    if not world.main:
        world.barrier(patient=True)  # rank 0 fills the feature cache first (however long); the others then read it
    clips, caches = load_dataset(datasets, extractor, fallback_cache=run_dir / "cache", cache_root=feature_cache,
                                 progress=world.main)
    if world.main:
        world.barrier(patient=True)
    say(f"features: {sum(c.hits for c in caches)} clip(s) read from the cache, "
        f"{sum(c.misses for c in caches)} computed")
    train, val = _split(clips)
    cfg, teacher, student, from_base = _init_models(cfg, identity, int(dim or clips[0].content.shape[1]))
    world.broadcast_weights(teacher, student)
    trainer = Trainer(cfg, train, val, run_dir, teacher, student, vocoder, from_base, world)
    if checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
        say(f"resuming at {trainer.state.phase} step {trainer.state.step}")
    trainer.state.elapsed_s += time.monotonic() - started  # max_minutes counts this run's feature extraction
    trainer.run(checkpoint)
    if not world.main:
        world.leave()  # waits while rank 0 writes the pack
        return out
    stats = {}
    for i, name in enumerate(names):
        f0 = torch.cat([c.f0 for c in clips if c.singer == i]).numpy()
        stats[name] = SingerStats.from_f0(f0)
    seconds = sum(c.frames for c in clips) / 86.13
    pack = VoicePack(cfg.model, names, stats, identity, getattr(vocoder, "identity", "builtin"),
                     trainer.ema.state_dict(), trainer.teacher.state_dict() if keep_teacher else None,
                     {"trained_seconds_of_audio": round(seconds, 1), "from_base": from_base,
                      # the updates that ran (early stop and --max-minutes end a phase before its plan)
                      "teacher_steps": trainer.state.ran.get("teacher", 0),
                      "distill_steps": trainer.state.ran.get("distill", 0),
                      "planned_steps": {"teacher": cfg.teacher_steps, "distill": cfg.distill_steps},
                      "processes": world.size, "seed": cfg.seed})
    try:
        path = save_pack(pack, out)
    except OSError as exc:
        world.leave()
        raise MelismaError(f"{out}: cannot write the voice pack ({exc.strerror or exc}); the checkpoint in "
                           f"{run_dir} is kept: the same command writes it again") from None
    world.leave()
    say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def training_features(content: str | None = None, f0_method: str = "dio",
                      pitch_shifts: tuple[float, ...] = TrainConfig.pitch_shifts, from_scratch: bool = False,
                      content_encoder: torch.nn.Module | None = None) -> FeatureExtractor:
    """The FeatureExtractor ``melisma train`` uses (and ``melisma features`` fills the cache with): the model
    pitch of ``f0_method``, RMS loudness, log-mel, and content by ``content_encoder`` or the encoder named
    ``content`` (default: the one the base pack expects when fine-tuning, else ``builtin``) for the clip and
    its ``pitch_shifts`` variants."""
    if content_encoder is None:
        if content is None:
            fine_tune = not from_scratch and BASE_MODEL.is_file()
            content = read_header(BASE_MODEL)["content_encoder"] if fine_tune else "builtin"
        content_encoder = default_component("content", content)
    return FeatureExtractor(f0_method, content_encoder.eval(), "rms", tuple(pitch_shifts))


def _split(clips: list[ClipFeatures]) -> tuple[list[ClipFeatures], list[ClipFeatures]]:
    """Hold out about 5 % of each singer's clips (at least one when a singer has 3+); else validate on train."""
    train, val = [], []
    for s in sorted({c.singer for c in clips}):
        mine = [c for c in clips if c.singer == s]
        k = max(1, len(mine) // 20) if len(mine) >= 3 else 0
        val += mine[:k]
        train += mine[k:]
    return train, (val or train)
