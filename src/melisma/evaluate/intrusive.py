"""Reconstruction quality against the original recording: PESQ (wide band) and STOI, both at 16 kHz.

Used when a singer is converted into their own voice, so the original is the ideal output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melisma.evaluate.deps import require
from melisma.evaluate.resample import JUDGE_RATE, to_16k


@dataclass(frozen=True)
class IntrusiveScores:
    pesq_wb: float  # ITU-T P.862.2 MOS-LQO, about 1.0-4.64
    stoi: float  # short-time objective intelligibility, 0-1


def intrusive_scores(degraded: np.ndarray, reference: np.ndarray, sr: int) -> IntrusiveScores:
    """(n,) converted and (m,) original at ``sr`` -> PESQ-wb and STOI (lengths trimmed to the shorter)."""
    pesq_mod = require("pesq")
    pystoi = require("pystoi")
    deg, ref = to_16k(degraded, sr).astype(np.float64), to_16k(reference, sr).astype(np.float64)
    n = min(deg.size, ref.size)
    deg, ref = deg[:n], ref[:n]
    try:
        p = float(pesq_mod.pesq(JUDGE_RATE, ref, deg, "wb"))
    except Exception:  # PESQ refuses clips it finds no speech in; that is a score, not a crash
        p = float("nan")
    s = float(pystoi.stoi(ref, deg, JUDGE_RATE, extended=False))
    return IntrusiveScores(pesq_wb=p, stoi=s)
