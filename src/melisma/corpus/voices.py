"""Voice ids: one string names one offline speaker.

Grammar (backend ``:`` name):
  ``kokoro:jf_alpha``                one of the five Kokoro Japanese voices
  ``kokoro:jf_alpha+jm_kumo@0.3``    blend (1-w)*A + w*B of two style tables, w in (0, 1)
  ``piper:joe``                      Piper en_US-joe-medium
  ``festival:slt|kal|ked``           festival's English voices
  ``festival:lp|pc|lj|mv|dita|machac`` the festvox Italian, Finnish and Czech voices
  ``flite:awb|rms|slt|kal16``        flite's CMU ARCTIC voices (and its kal diphone voice)
  ``espeak:en+f3[:pPITCH][:sSPEED]`` espeak-ng voice, variant, pitch 0-99, speed wpm; also it, fi, cs voices

A voice's language and register (the octave it sings in) come from the voice, not its backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from melisma.corpus.backends import Speech

BACKENDS = ("kokoro", "piper", "festival", "flite", "espeak")
LANGUAGES = ("ja", "en", "it", "fi", "cs")  # those melisma.corpus.texts has sentences for
# Singing range (MIDI, low..high) by register; a melody is shifted by octaves to fit the voice.
RANGES = {"female": (57, 76), "male": (45, 64)}


@dataclass(frozen=True)
class VoiceSpec:
    """A parsed voice id. ``parents``/``weights`` describe kokoro blends (one parent, weight 1, otherwise)."""

    voice_id: str
    backend: str
    name: str
    parents: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def language(self) -> str:
        """The language the voice reads ("ja", "en", "it", "fi", "cs")."""
        if self.backend == "kokoro":
            return "ja"
        if self.backend == "festival":
            from melisma.corpus.backends.festival import VOICES

            return VOICES[self.name].language
        if self.backend == "espeak":
            from melisma.corpus.backends.espeak import language

            return language(self.name)
        return "en"  # piper joe, flite

    @property
    def register(self) -> str:
        """"male" or "female": picks the octave a melody is sung in."""
        if self.backend == "kokoro":
            male = sum(w for p, w in zip(self.parents, self.weights, strict=True) if p.startswith("jm_"))
            return "male" if male > 0.5 else "female"
        if self.backend == "festival":
            from melisma.corpus.backends.festival import VOICES

            return VOICES[self.name].register
        if self.backend == "flite":
            from melisma.corpus.backends.flite import VOICES as FLITE

            return FLITE[self.name]
        if self.backend == "espeak":
            return "female" if "+f" in self.name else "male"
        return "male"

    @property
    def slug(self) -> str:
        """File-system safe form of the id, e.g. ``kokoro_jf_alpha+jm_kumo@0.5`` -> ``kokoro-jf_alpha-jm_kumo-50``."""
        out = self.voice_id.replace(":", "-").replace("+", "-").replace("@", "-")
        if self.parents and len(self.parents) == 2:
            out = out.rsplit("-", 1)[0] + f"-{int(round(self.weights[1] * 100)):02d}"
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in out)


def parse_voice(voice_id: str) -> VoiceSpec:
    """``"kokoro:jf_alpha+jm_kumo@0.5"`` -> VoiceSpec. Raises ValueError with the grammar on a bad id."""
    backend, sep, name = voice_id.partition(":")
    if not sep or backend not in BACKENDS or not name:
        raise ValueError(f"bad voice id '{voice_id}': expected BACKEND:NAME with BACKEND in {', '.join(BACKENDS)}")
    if backend != "kokoro":
        return _checked(VoiceSpec(voice_id, backend, name))
    from melisma.corpus.backends.kokoro import VOICES

    parents: tuple[str, ...]
    weights: tuple[float, ...]
    if "+" in name:
        a, _, rest = name.partition("+")
        b, _, w = rest.partition("@")
        try:
            weight = float(w) if w else 0.5
        except ValueError:
            raise ValueError(f"bad blend weight in '{voice_id}' (use A+B@0.3)") from None
        if not 0.0 < weight < 1.0:
            raise ValueError(f"blend weight in '{voice_id}' must lie strictly between 0 and 1")
        parents, weights = (a, b), (1.0 - weight, weight)
    else:
        parents, weights = (name,), (1.0,)
    for p in parents:
        if p not in VOICES:
            raise ValueError(f"unknown kokoro voice '{p}' in '{voice_id}' (choose from {', '.join(VOICES)})")
    return VoiceSpec(voice_id, backend, name, parents, weights)


def _checked(spec: VoiceSpec) -> VoiceSpec:
    """``spec`` when its backend knows the name and has texts in its language, else ValueError."""
    known: dict[str, tuple[str, ...]] = {}
    if spec.backend == "festival":
        from melisma.corpus.backends.festival import VOICES as FESTIVAL

        known["festival"] = tuple(FESTIVAL)
    elif spec.backend == "flite":
        from melisma.corpus.backends.flite import VOICES as FLITE

        known["flite"] = tuple(FLITE)
    elif spec.backend == "piper":
        known["piper"] = ("joe",)
    if spec.backend in known and spec.name not in known[spec.backend]:
        raise ValueError(f"unknown {spec.backend} voice '{spec.name}' in '{spec.voice_id}' "
                         f"(choose from {', '.join(known[spec.backend])})")
    if spec.language not in LANGUAGES:
        raise ValueError(f"'{spec.voice_id}' reads '{spec.language}', which has no texts "
                         f"(languages: {', '.join(LANGUAGES)})")
    return spec


def backend_module(backend: str):
    """The module implementing ``backend`` (imported lazily: each pulls heavy packages)."""
    return importlib.import_module(f"melisma.corpus.backends.{backend}")


def synthesize_speech(spec: VoiceSpec, text: str, rng: np.random.Generator) -> Speech:
    """Speak ``text`` with ``spec`` -> Speech: audio float32 (n,) at its own rate, and its front end's phones."""
    return backend_module(spec.backend).synthesize(spec, text, rng)


def blend_id(a: str, b: str, weight: float) -> str:
    """Voice id of the kokoro blend (1-weight)*a + weight*b."""
    return f"kokoro:{a}+{b}@{weight:g}"


def default_voices(count: int, seed: int = 0) -> list[str]:
    """A mix of ``count`` training voices: kokoro voices and blends first, then piper/festival/espeak."""
    from melisma.corpus.backends.kokoro import VOICES
    from melisma.corpus.heldout import near_held_out

    fixed = ["piper:joe", "festival:slt", "festival:ked", "espeak:en+f3:p60", "espeak:en-us+m3:p40",
             "espeak:en+f5:p70", "espeak:en-us+m1:p35"]
    kok = [f"kokoro:{v}" for v in VOICES]
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for i, a in enumerate(VOICES) for b in VOICES[i + 1:]]
    blends: list[str] = []
    for w in (0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6):
        for a, b in pairs:
            blends.append(blend_id(a, b, w))
    blends = [blends[i] for i in rng.permutation(len(blends))]
    order = kok[:2] + blends[:3] + fixed[:3] + kok[2:] + blends[3:6] + fixed[3:] + blends[6:]
    return [v for v in order if not near_held_out(v)][:count]


# espeak-ng accents and variants whose register ("+f" = female) VoiceSpec.register reads right
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "croak", "Andy", "Denis", "Gene", "Jacky", "Lee", "Mario", "Michael", "Storm", "Tony",
                   "edward", "robert", "victor", "boris")
ESPEAK_PITCHES = (25, 45, 65, 85)


def espeak_voices(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct espeak-ng voice ids (accent x variant x pitch), e.g. ``espeak:en-gb+f3:p65``: a quick,
    large set of robotic speakers for the content encoder, which needs many voices more than natural ones."""
    combos = [f"espeak:{a}+{v}:p{p}" for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS for p in ESPEAK_PITCHES]
    order = np.random.default_rng(seed).permutation(len(combos))
    return [combos[i] for i in order[:count]]


# espeak-ng voices of the other languages with texts; their variants are the same table's
ESPEAK_OTHER_LANGUAGES = ("it", "fi", "cs")
FESTIVAL_VOICES = ("slt", "kal", "ked", "lp", "pc", "lj", "mv", "dita", "machac")
FLITE_VOICES = ("awb", "rms", "slt", "kal16")


def kokoro_blends(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct kokoro blends that leak no held-out voice: every allowed parent pair (in a seeded
    order) at weight 0.3, then every pair at 0.7, then 0.5, 0.2, 0.8 — so no two blends are near twins."""
    from melisma.corpus.backends.kokoro import VOICES
    from melisma.corpus.heldout import near_held_out

    pairs = [(a, b) for i, a in enumerate(VOICES) for b in VOICES[i + 1:]]
    pairs = [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))]
    blends = [blend_id(a, b, w) for w in (0.3, 0.7, 0.5, 0.2, 0.8) for a, b in pairs]
    return [v for v in blends if not near_held_out(v)][:count]


def multilingual_espeak_voices(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct espeak-ng voices, a quarter of them (rounded up) reading it, fi or cs in turn, the
    rest English accents (``espeak_voices``)."""
    n_other = -(-count // 4)
    rng = np.random.default_rng([seed, 1])
    others: list[str] = []
    combos = [f"espeak:{lang}+{v}:p{p}" for lang in ESPEAK_OTHER_LANGUAGES for v in ESPEAK_VARIANTS
              for p in ESPEAK_PITCHES]
    by_lang = {lang: [c for c in combos if c.startswith(f"espeak:{lang}+")] for lang in ESPEAK_OTHER_LANGUAGES}
    picks = {lang: [by_lang[lang][i] for i in rng.permutation(len(by_lang[lang]))] for lang in by_lang}
    for i in range(n_other):
        lang = ESPEAK_OTHER_LANGUAGES[i % len(ESPEAK_OTHER_LANGUAGES)]
        others.append(picks[lang][i // len(ESPEAK_OTHER_LANGUAGES)])
    return espeak_voices(count - n_other, seed) + others


def all_offline_voices(n_blends: int = 10, n_espeak: int = 12, seed: int = 0) -> list[str]:
    """Every offline voice family that may be trained on: the trainable kokoro voices plus ``n_blends`` blends,
    piper joe, festival's English and festvox it/fi/cs voices, flite's ARCTIC voices and ``n_espeak`` espeak-ng
    voices across languages.  Held-out voices, and voices that are a held-out speaker under another backend
    (flite kal16 is festival kal), are left out: a corpus of these passes ``trainable_clips``."""
    from melisma.corpus.backends.kokoro import VOICES
    from melisma.corpus.heldout import near_held_out

    fixed = [f"kokoro:{v}" for v in VOICES] + ["piper:joe"]
    fixed += [f"festival:{v}" for v in FESTIVAL_VOICES] + [f"flite:{v}" for v in FLITE_VOICES]
    voices = fixed + kokoro_blends(n_blends, seed) + multilingual_espeak_voices(n_espeak, seed)
    return [v for v in voices if not near_held_out(v)]
