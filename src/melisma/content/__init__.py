"""Content stage: waveform -> timbre-free content features on the shared frame grid.

``get_content_encoder("builtin")`` is melisma's own small encoder (shipped weights, v1: textless);
``get_content_encoder("phonetic")`` the same network trained with phone supervision (v2, with a phone head);
``get_content_encoder("dsp-cepstral")`` the weight-free cepstral fallback (identity ``dsp-cepstral-v1``);
``get_content_encoder("hubert", checkpoint=DIR_OR_ID, output_layer=12)`` and
``get_content_encoder("contentvec", checkpoint=DIR_OR_ID, kind="vec768l12" | "vec256l9")`` load
Hugging Face HuBERT/ContentVec checkpoints (``pip install 'melisma[ssl]'``).
"""

from __future__ import annotations

from typing import Any

from melisma.content.base import ContentEncoder
from melisma.errors import MelismaError

NAMES = ("builtin", "phonetic", "dsp-cepstral", "hubert", "contentvec")


def get_content_encoder(name: str = "builtin", **kw: Any) -> ContentEncoder:
    """Build a content encoder by name; keyword arguments go to its loader (``path``, ``checkpoint``...)."""
    if name in ("builtin", "phonetic"):
        from melisma.content.builtin import BuiltinContentEncoder

        return BuiltinContentEncoder.load(kw.get("path"), name)
    if name == "dsp-cepstral":
        from melisma.content.cepstral import CepstralContentEncoder

        return CepstralContentEncoder()
    if name in ("hubert", "contentvec"):
        from melisma.content.hubert import HubertContentEncoder

        if "checkpoint" not in kw:
            raise MelismaError(f"content encoder '{name}' needs checkpoint=DIR_OR_HUB_ID")
        if name == "contentvec":
            return HubertContentEncoder.preset(kw["checkpoint"], kw.get("kind", "vec768l12"))
        return HubertContentEncoder(**kw)
    raise MelismaError(f"unknown content encoder '{name}' (choose from {', '.join(NAMES)})")


__all__ = ["ContentEncoder", "NAMES", "get_content_encoder"]
