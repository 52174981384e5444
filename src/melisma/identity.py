"""Identities of content encoders and vocoders: what a voice pack records, so that it never runs with weights
other than the ones it was trained with.

A component with weights is named ``<name>@<hash12>``: its registry name and the first 12 hex digits of
``weights_hash`` of its state (``builtin@b26d7d9c75fe``).  Weight-free components keep a versioned name
(``dsp-cepstral-v1``).  Packs written before identities carried a hash name only a release (``builtin``,
``builtin-v1``); ``RELEASED`` keeps the hashes of the weights melisma shipped under each such name, so an old
pack is checked against those and refused with any other weights.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import torch

HASH_CHARS = 12  # 48 bits: enough to tell retrains apart, short enough to read in an error message

# role -> released identity -> full weights_hash of every weight file shipped under that identity
RELEASED: dict[str, dict[str, tuple[str, ...]]] = {
    "content": {
        # content-builtin.safetensors as shipped in ffc749e (unchanged since)
        "builtin": ("b26d7d9c75feec8c00c21b10daee159c2bafafa836082d55d80669b7ce2bf4ed",),
    },
    "vocoder": {
        # vocoder-builtin.safetensors of 2559243, 66ad84b and 99bd9c1: three trainings shipped under one name
        "builtin-v1": ("20ef0f6a33140f40bfb50ac8968a5bc3a0d15223ed5e9458422c3af624a790cf",
                       "40845f3a69ef4a5c9bbf78941e9cf4142b41594b2aa33b0622ca1fd43895935c",
                       "c75fad03ef50878aa090afd42b753833779db17d88bbc357fe21f37d0737fcdc"),
    },
}


def weights_hash(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 (hex) over the sorted tensor names, shapes and float32 bytes of a state dict.

    Floating tensors are hashed as float32, the precision the model computes in: a float16 file and the
    float32 model loaded from it hash alike, and any change to any weight changes the hash.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu()
        t = (t.float() if t.is_floating_point() else t).contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def weights_identity(name: str, state: Mapping[str, torch.Tensor]) -> str:
    """``<name>@<first HASH_CHARS hex digits of weights_hash(state)>``."""
    return f"{name}@{weights_hash(state)[:HASH_CHARS]}"


def registry_name(identity: str) -> str:
    """The registry name an identity was built from: ``builtin@ab12..`` / ``builtin-v1`` -> ``builtin``,
    ``dsp-cepstral-v1`` -> ``dsp-cepstral``."""
    return re.sub(r"-v\d+$", "", identity.split("@", 1)[0])


def accepted_hashes(role: str, identity: str) -> tuple[str, ...]:
    """Hash prefixes a recorded identity accepts: its own ``@hash``, or the shipped hashes of a released name."""
    if "@" in identity:
        return (identity.split("@", 1)[1],)
    return tuple(h[:HASH_CHARS] for h in RELEASED.get(role, {}).get(identity, ()))


def identity_matches(role: str, recorded: str, loaded: str) -> bool:
    """Whether a component named ``loaded`` is the one a pack recording ``recorded`` was trained with.

    ``role`` is ``"content"`` or ``"vocoder"``.  Equal strings match (weight-free components).  A hashed or
    released ``recorded`` needs the loaded weights' hash to be one it accepts.  A name recorded before hashes
    that melisma never shipped (``hubert:ckpt:l12``) claims no weights, so it is matched by name as before.
    """
    if recorded == loaded:
        return True
    name, _, digest = loaded.partition("@")
    if "@" not in recorded and recorded not in RELEASED.get(role, {}):
        return name == recorded
    return bool(digest) and registry_name(recorded) == registry_name(loaded) and \
        digest in accepted_hashes(role, recorded)


def describe(role: str, identity: str) -> str:
    """``'builtin' (weights builtin@b26d7d9c75fe)`` for a released name, else the identity quoted."""
    hashes = accepted_hashes(role, identity) if "@" not in identity else ()
    name = registry_name(identity)
    return f"{identity!r} (weights {' or '.join(f'{name}@{h}' for h in hashes)})" if hashes else repr(identity)
