"""Naturalness without a reference: DNSMOS P.835 (SIG, BAK, OVRL on a 1-5 MOS scale) via speechmos."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melisma.evaluate.deps import require
from melisma.evaluate.resample import JUDGE_RATE, peak_normalise, to_16k

MIN_SECONDS = 1.0  # DNSMOS scores 9 s windows; shorter clips are looped up to at least this much


@dataclass(frozen=True)
class DnsmosScores:
    sig: float  # speech signal quality, MOS 1-5
    bak: float  # background noise intrusiveness (higher = cleaner), MOS 1-5
    ovrl: float  # overall quality, MOS 1-5


def dnsmos(audio: np.ndarray, sr: int) -> DnsmosScores:
    """(n,) mono at ``sr`` -> DNSMOS scores of the peak-normalised 16 kHz clip."""
    speechmos = require("speechmos.dnsmos")
    x = peak_normalise(to_16k(audio, sr))
    if x.size < MIN_SECONDS * JUDGE_RATE:
        x = np.tile(x, int(np.ceil(MIN_SECONDS * JUDGE_RATE / max(x.size, 1))))
    r = speechmos.run(x.astype(np.float64), JUDGE_RATE)
    return DnsmosScores(sig=float(r["sig_mos"]), bak=float(r["bak_mos"]), ovrl=float(r["ovrl_mos"]))
