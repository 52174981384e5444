"""Separation scores against true stems (numpy); plain SDR is ``melisma.prepare.synthetic.sdr_db``."""

from __future__ import annotations

import numpy as np


def si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019) of (n,) ``estimate`` against (n,) ``reference``."""
    ref = np.asarray(reference, np.float64)
    est = np.asarray(estimate, np.float64)
    alpha = float(est @ ref) / max(float(ref @ ref), 1e-20)
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10(max(float(target @ target), 1e-20) / max(float(noise @ noise), 1e-20)))

