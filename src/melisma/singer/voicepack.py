"""Voice pack: ONE versioned file (safetensors) holding the model weights and, in its metadata, a JSON header:
the format stamp (``melisma.formats``, kind ``voice``), the model config, singer names, each singer's pitch
statistics (for auto-transpose), and the identities of the content encoder and vocoder the weights expect
(``builtin@<hash12>``: the hash of the exact weights, see ``melisma.identity``).

Tensors: ``student.*`` (one-step consistency model, always) and ``teacher.*`` (EDM teacher, optional), stored as
float16 to keep packs small (a 3 M-parameter pair is ~12 MB) and loaded back as float32.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from melisma.atomic import atomic_path
from melisma.errors import MelismaError
from melisma.formats import check, stamp
from melisma.singer.model import SingerConfig, SingerNet

PACK_SUFFIX = ".melisma"


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
    except (KeyError, ValueError):
        raise VoicePackError(f"{p}: not a melisma voice pack (no header)") from None
    check(header, "voice", p, error=VoicePackError)  # version 1 differs only in naming weights without a hash
    return header


def load_pack(path: str | os.PathLike) -> VoicePack:
    """Read and check a pack written by ``save_pack``."""
    from safetensors.torch import load_file

    header = read_header(path)
    tensors = load_file(str(path))
    student = {k[8:]: v.float() for k, v in tensors.items() if k.startswith("student.")}
    teacher = {k[8:]: v.float() for k, v in tensors.items() if k.startswith("teacher.")} or None
    try:
        cfg = SingerConfig.from_dict(header["config"])
        stats = {k: SingerStats(**v) for k, v in header["stats"].items()}
        pack = VoicePack(cfg, list(header["singers"]), stats, header["content_encoder"], header["vocoder"],
                         student, teacher, header.get("info", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise VoicePackError(f"{path}: damaged voice pack header ({exc})") from None
    if not student:
        raise VoicePackError(f"{path}: voice pack holds no student weights")
    return pack


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
