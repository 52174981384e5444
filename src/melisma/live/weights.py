"""Files of the streaming networks: safetensors with a ``melisma.stream-weights`` stamp, the network's config,
and (decoders) the singers, their median F0 and the identities of the content and vocoder networks it was
distilled against. A decoder file is a *streamable voice* (``.melisma-stream``); loading is strict.
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
from melisma.live.nets import CausalStack, StreamConfig

STREAM_SUFFIX = ".melisma-stream"
MAX_PARAMETERS = 20_000_000


@dataclass
class StreamNet:
    """A loaded streaming network and what its file says about it."""

    net: CausalStack
    path: Path | None = None
    info: dict = field(default_factory=dict)  # decoders: singers, median_f0, content, vocoder, source, training

    @property
    def identity(self) -> str:
        return net_identity(self.net)


def net_identity(net: CausalStack) -> str:
    """``stream-<role>@<hash12>`` of a network's weights."""
    return weights_identity(f"stream-{net.cfg.role}", net.state_dict())


def save_stream_net(net: CausalStack, path: str | os.PathLike, info: dict | None = None, half: bool = True) -> None:
    """Write ``net`` (float16 by default) with its config and ``info`` (JSON) in the metadata, atomically."""
    from safetensors.torch import save_file

    meta = {**stamp_metadata("stream-weights"), "config": json.dumps(net.cfg.to_dict()),
            "info": json.dumps(info or {})}
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to(dtype).contiguous() for k, v in net.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_stream_net(path: str | os.PathLike, role: str) -> StreamNet:
    """Load a streaming network of ``role`` strictly; MelismaError (one line) for anything else."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MelismaError(f"streaming model not found: {path}")
    meta = safetensors_metadata(path, "stream-weights", error=MelismaError)
    check(meta, "stream-weights", path)
    try:
        cfg = StreamConfig(**json.loads(meta["config"]))
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, TypeError, ValueError) as exc:
        raise MelismaError(f"{path}: damaged streaming model config ({exc})") from None
    if cfg.role != role:
        raise MelismaError(f"{path} is a streaming {cfg.role} network, not a {role}")
    net = CausalStack(cfg)
    if sum(p.numel() for p in net.parameters()) > MAX_PARAMETERS:
        raise MelismaError(f"{path}: the network is larger than any melisma streams")
    state = load_file(str(path))
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise MelismaError(f"{path}: weights do not match the config ({str(exc).splitlines()[0]})") from None
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        raise MelismaError(f"{path}: weights are not finite")
    if role == "decoder" and len(info.get("singers", [])) != cfg.n_singers:
        raise MelismaError(f"{path}: {cfg.n_singers} singer rows but {len(info.get('singers', []))} singer names")
    return StreamNet(net.eval(), path, info)
