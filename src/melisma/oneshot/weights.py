"""The one-shot model's weights file: safetensors (float16) + metadata (format stamp ``melisma.oneshot-weights``,
the config, the identities of the content encoder and vocoder it was trained with, training info).

Loading is strict: every tensor the config's network has, none extra, shapes equal, values finite.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from melisma.atomic import atomic_path
from melisma.errors import MelismaError
from melisma.formats import check, safetensors_metadata, stamp_metadata
from melisma.identity import weights_identity
from melisma.oneshot.model import OneShotConfig, OneShotNet
from melisma.paths import ONESHOT_WEIGHTS

MAX_PARAMETERS = 50_000_000  # the shipped model has ~3.5 M; a file asking for more is refused before allocating


@dataclass
class OneShotWeights:
    """A loaded one-shot model: the network (eval mode) and what it was trained with."""

    net: OneShotNet
    content_encoder: str  # identity of the content encoder (``builtin@<hash12>``)
    vocoder: str  # identity of the vocoder
    info: dict = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """``oneshot@<hash12>`` of the weights: what a speaker embedding records it was made with."""
        return weights_identity("oneshot", self.net.state_dict())


def save_oneshot(net: OneShotNet, path: str | os.PathLike, content_encoder: str, vocoder: str, info: dict | None = None
                 ) -> Path:
    """Write ``net`` (as float16) with its config, component identities and ``info`` atomically; returns the path."""
    from safetensors.torch import save_file

    meta = {**stamp_metadata("oneshot-weights"), "config": json.dumps(net.cfg.to_dict()),
            "content_encoder": content_encoder, "vocoder": vocoder, "info": json.dumps(info or {})}
    out = Path(path)
    with atomic_path(out) as tmp:
        save_file({k: v.detach().half().contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)
    return out


def load_oneshot(path: str | os.PathLike | None = None) -> OneShotWeights:
    """Read a file written by ``save_oneshot`` (default: the shipped model); one-line MelismaError otherwise."""
    from safetensors import safe_open

    p = Path(path) if path is not None else ONESHOT_WEIGHTS
    if not p.is_file():
        raise MelismaError(f"{p}: no one-shot model here (rebuild it with `melisma foundation oneshot`)")
    meta = safetensors_metadata(p, "oneshot-weights", error=MelismaError)
    check(meta, "oneshot-weights", p, error=MelismaError)
    try:
        cfg = OneShotConfig.from_dict(json.loads(meta["config"]))
        info = json.loads(meta.get("info", "{}"))
        content, vocoder = str(meta["content_encoder"]), str(meta["vocoder"])
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in OneShotNet(cfg).state_dict().items()}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise MelismaError(f"{p}: damaged one-shot model header ({str(exc)[:100]})") from None
    if sum(torch.Size(s).numel() for s in shapes.values()) > MAX_PARAMETERS:
        raise MelismaError(f"{p}: the config asks for more than {MAX_PARAMETERS:,} parameters")
    with safe_open(str(p), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        if found != shapes:
            bad = sorted(set(found) ^ set(shapes)) or [k for k in shapes if found[k] != shapes[k]]
            raise MelismaError(f"{p}: weights do not match the config ({bad[:3]})")
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise MelismaError(f"{p}: weights hold NaN or infinite values")
    net = OneShotNet(cfg)
    net.load_state_dict(state, strict=True)
    return OneShotWeights(net.eval(), content, vocoder, info)
