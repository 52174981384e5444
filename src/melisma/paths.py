"""Where melisma's packaged assets live: the one place every module takes an asset path from.

Everything here is read-only data inside the installed package; no command writes below ``ASSETS``.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
MODELS = ASSETS / "models"
BASE_PACK = MODELS / "singer-base.melisma"  # the base multi-singer model; each singer is a built-in voice
CONTENT_WEIGHTS = MODELS / "content-builtin.safetensors"  # the builtin content encoder
PHONETIC_CONTENT_WEIGHTS = MODELS / "content-phonetic.safetensors"  # v2: the same network, phone-supervised
VOCODER_WEIGHTS = MODELS / "vocoder-builtin.safetensors"  # the builtin vocoder
SEPARATOR_WEIGHTS = MODELS / "separator-builtin.safetensors"  # the learned vocal separator
ONESHOT_WEIGHTS = MODELS / "oneshot-builtin.safetensors"  # the one-shot model (melisma.oneshot)
STREAM_CONTENT_WEIGHTS = MODELS / "stream-content.safetensors"  # causal content network (melisma.live)
STREAM_VOCODER_WEIGHTS = MODELS / "stream-vocoder.safetensors"  # causal vocoder filter network
STREAM_BASE = MODELS / "stream-base.safetensors"  # causal decoder of the base pack's singers: built-in voices live
BUILTIN_VOICES = ASSETS / "voices"  # single-file voice packs shipped with melisma (none yet)
DEMO = ASSETS / "demo"  # the bundled demo song, its dry vocal, accompaniment and demo.json
