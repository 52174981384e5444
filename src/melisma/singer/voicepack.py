"""Voice pack: ONE versioned file (safetensors) holding the model weights and, in its metadata, a JSON header:
the format stamp (``melisma.formats``, kind ``voice``), the model config, singer names, each singer's pitch
statistics (for auto-transpose), and the identities of the content encoder and vocoder the weights expect
(``builtin@<hash12>``: the hash of the exact weights, see ``melisma.identity``).

Tensors: ``student.*`` (one-step consistency model, always) and ``teacher.*`` (EDM teacher, optional), stored as
float16 to keep packs small (a 3 M-parameter pair is ~12 MB) and loaded back as float32.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from melisma.atomic import atomic_path
from melisma.errors import MelismaError
from melisma.formats import check, stamp
from melisma.singer.model import SingerConfig, SingerNet

PACK_SUFFIX = ".melisma"
# a pack's config may not ask for more than this: the shipped models are ~3 M parameters, so a pack that would
# make melisma allocate gigabytes is refused before anything is built (each field has its own bound too)
MAX_PARAMETERS = 200_000_000
CONFIG_BOUNDS = {"content_dim": (1, 8192), "n_singers": (1, 4096), "n_mels": (1, 512), "hidden": (1, 4096),
                 "residual_channels": (1, 4096), "layers": (1, 256), "dilation_cycle": (1, 16),
                 "kernel_size": (1, 63), "prior_layers": (0, 16)}


class VoicePackError(MelismaError):
    """A voice pack is missing, damaged, of another format version, or does not match its config."""


@dataclass(frozen=True)
class SingerStats:
    """Pitch statistics of one singer's voiced frames (Hz)."""

    median_f0: float
    p05_f0: float
    p95_f0: float

    @classmethod
    def from_f0(cls, f0) -> SingerStats:
        import numpy as np

        v = np.asarray(f0, dtype=np.float64)
        v = v[v > 0]
        if v.size == 0:
            return cls(0.0, 0.0, 0.0)
        return cls(float(np.median(v)), float(np.percentile(v, 5)), float(np.percentile(v, 95)))


@dataclass
class VoicePack:
    """Everything a conversion needs apart from the shared content encoder and vocoder."""

    config: SingerConfig
    singers: list[str]
    stats: dict[str, SingerStats]
    content_encoder: str
    vocoder: str
    student: dict[str, torch.Tensor]
    teacher: dict[str, torch.Tensor] | None = None
    info: dict = field(default_factory=dict)  # free-form provenance (training steps, data duration, ...)

    def build_student(self) -> SingerNet:
        return _build(self.config, self.student, "student")

    def build_teacher(self) -> SingerNet | None:
        return None if self.teacher is None else _build(self.config, self.teacher, "teacher")


def check_config(cfg: SingerConfig, source: str | os.PathLike = "voice pack") -> SingerConfig:
    """``cfg`` if every size is within ``CONFIG_BOUNDS`` and the network has at most ``MAX_PARAMETERS``
    (counted on the meta device: nothing allocated); else one-line VoicePackError."""
    for name, (low, high) in CONFIG_BOUNDS.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise VoicePackError(f"{source}: config {name} = {value!r} is outside {low}..{high}")
    if not isinstance(cfg.harmonic_template, bool):
        raise VoicePackError(f"{source}: config harmonic_template = {cfg.harmonic_template!r} is not true/false")
    if not isinstance(cfg.sigma_data, (int, float)) or not 1e-4 <= cfg.sigma_data <= 10.0:
        raise VoicePackError(f"{source}: config sigma_data = {cfg.sigma_data!r} is outside 1e-4..10")
    shapes = expected_shapes(cfg, source)
    count = sum(math.prod(s) for s in shapes.values())
    if count > MAX_PARAMETERS:
        raise VoicePackError(f"{source}: config asks for {count:,} parameters (at most {MAX_PARAMETERS:,})")
    return cfg


def expected_shapes(cfg: SingerConfig, source: str | os.PathLike = "voice pack") -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of a ``SingerNet(cfg)``, from a network on the meta device (no memory)."""
    try:
        with torch.device("meta"):
            net = SingerNet(cfg)
    except (ValueError, RuntimeError) as exc:
        raise VoicePackError(f"{source}: config cannot be built ({exc})") from None
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _build(cfg: SingerConfig, state: dict[str, torch.Tensor], role: str) -> SingerNet:
    net = SingerNet(cfg)
    missing, unexpected = net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise VoicePackError(f"{role} weights do not match the config (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]})")
    return net.eval()


def save_pack(pack: VoicePack, path: str | os.PathLike) -> Path:
    """Write ``pack`` to ``path`` atomically (temporary file + rename). Returns the path."""
    from safetensors.torch import save_file

    if len(pack.singers) != pack.config.n_singers or len(set(pack.singers)) != len(pack.singers):
        raise VoicePackError(f"need {pack.config.n_singers} distinct singer names, got {pack.singers}")
    header = {
        **stamp("voice"),
        "config": pack.config.to_dict(),
        "singers": pack.singers,
        "stats": {k: vars(v) for k, v in pack.stats.items()},
        "content_encoder": pack.content_encoder,
        "vocoder": pack.vocoder,
        "info": pack.info,
    }
    tensors = {f"student.{k}": v.detach().half().contiguous() for k, v in pack.student.items()}
    if pack.teacher is not None:
        tensors.update({f"teacher.{k}": v.detach().half().contiguous() for k, v in pack.teacher.items()})
    out = Path(path)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"melisma": json.dumps(header)})
    return out


def read_header(path: str | os.PathLike) -> dict:
    """The JSON header of a pack, checked for format and version, without loading the weights."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise VoicePackError(f"{p}: no such voice pack")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise VoicePackError(f"{p}: not a voice pack ({type(exc).__name__})") from None
    try:
        header = json.loads(meta["melisma"])
    except (KeyError, ValueError, TypeError, RecursionError):
        raise VoicePackError(f"{p}: not a melisma voice pack (no header)") from None
    check(header, "voice", p, error=VoicePackError)  # version 1 differs only in naming weights without a hash
    return header


def load_pack(path: str | os.PathLike) -> VoicePack:
    """Read and check a pack written by ``save_pack``: header, config bounds, then every tensor's name, shape and
    dtype against the config *before* any weight is read, then finite values. Any mismatch is a one-line
    VoicePackError."""
    header = read_header(path)
    try:
        cfg = check_config(SingerConfig.from_dict(header["config"]), path)
        singers, stats = _singers_of(header, cfg)
        content_encoder, vocoder, info = header["content_encoder"], header["vocoder"], header.get("info", {})
        if not isinstance(content_encoder, str) or not isinstance(vocoder, str) or not isinstance(info, dict):
            raise TypeError("content_encoder and vocoder must be names, info an object")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VoicePackError(f"{path}: damaged voice pack header ({exc})") from None
    student, teacher = _read_weights(Path(path), expected_shapes(cfg, path))
    return VoicePack(cfg, singers, stats, content_encoder, vocoder, student, teacher, info)


def _singers_of(header: dict, cfg: SingerConfig) -> tuple[list[str], dict[str, SingerStats]]:
    singers = header["singers"]
    if (not isinstance(singers, list) or not all(isinstance(n, str) for n in singers)
            or len(set(singers)) != len(singers) or len(singers) != cfg.n_singers):
        raise ValueError(f"singers must be {cfg.n_singers} distinct names (config n_singers), got "
                         f"{str(singers)[:80]}")
    raw = header["stats"]
    if not isinstance(raw, dict) or set(raw) != set(singers):
        raise ValueError("stats must name exactly the pack's singers")
    stats = {k: SingerStats(**v) for k, v in raw.items()}
    for name, st in stats.items():
        if not all(isinstance(x, (int, float)) and math.isfinite(x) and 0 <= x < 20_000 for x in vars(st).values()):
            raise ValueError(f"pitch statistics of {name!r} are not frequencies")
    return list(singers), stats


def _read_weights(path: Path, shapes: dict[str, tuple[int, ...]]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            roles = {"student": [k for k in names if k.startswith("student.")],
                     "teacher": [k for k in names if k.startswith("teacher.")]}
            stray = [k for k in names if not k.startswith(("student.", "teacher."))]
            if stray:
                raise VoicePackError(f"{path}: tensors {stray[:3]} belong to no model of a voice pack")
            if not roles["student"]:
                raise VoicePackError(f"{path}: voice pack holds no student weights")
            out: dict[str, dict[str, torch.Tensor]] = {}
            for role, keys in roles.items():
                if keys:
                    _check_shapes(path, role, {k[len(role) + 1:]: tuple(f.get_slice(k).get_shape()) for k in keys},
                                  shapes)
                    out[role] = {k[len(role) + 1:]: f.get_tensor(k) for k in keys}
    except VoicePackError:
        raise
    except Exception as exc:  # safetensors reports a damaged file as several exception types
        raise VoicePackError(f"{path}: damaged voice pack weights ({type(exc).__name__}: {str(exc)[:120]})") from None
    for role, state in out.items():
        for k, v in state.items():
            if not v.is_floating_point():
                raise VoicePackError(f"{path}: {role} tensor {k} is {v.dtype}, not floating point")
            if not torch.isfinite(v).all():
                raise VoicePackError(f"{path}: {role} tensor {k} holds NaN or infinite values")
        out[role] = {k: v.float() for k, v in state.items()}
    return out["student"], out.get("teacher")


def _check_shapes(path: Path, role: str, found: dict[str, tuple[int, ...]], want: dict[str, tuple[int, ...]]) -> None:
    missing, extra = sorted(set(want) - set(found)), sorted(set(found) - set(want))
    if missing or extra:
        raise VoicePackError(f"{path}: {role} weights do not match the config (missing {missing[:3]}, unexpected "
                             f"{extra[:3]})")
    for k, shape in found.items():
        if shape != want[k]:
            raise VoicePackError(f"{path}: {role} tensor {k} has shape {list(shape)}, the config needs "
                                 f"{list(want[k])}")


def select_singers(pack: VoicePack, names: list[str], keep_teacher: bool = False) -> VoicePack:
    """A pack holding only ``names`` of a multi-singer pack (same weights, fewer singer embeddings)."""
    from dataclasses import replace

    missing = [n for n in names if n not in pack.singers]
    if missing or not names:
        raise VoicePackError(f"singers {missing or names} are not in this pack ({', '.join(pack.singers)})")
    rows = torch.tensor([pack.singers.index(n) for n in names])

    def cut(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (v[rows] if k == "encoder.singer.weight" else v) for k, v in state.items()}

    return VoicePack(replace(pack.config, n_singers=len(names)), list(names), {n: pack.stats[n] for n in names},
                     pack.content_encoder, pack.vocoder, cut(pack.student),
                     cut(pack.teacher) if keep_teacher and pack.teacher is not None else None,
                     {**pack.info, "selected_from": pack.singers})
