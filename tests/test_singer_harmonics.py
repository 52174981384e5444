"""The harmonic template: the F0's comb in melisma's log-mel, and how the condition encoder uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from melisma.audio.constants import N_FFT, N_MELS, SAMPLE_RATE
from melisma.features.mel import log_mel, mel_basis
from melisma.singer.harmonics import exact_template, harmonic_template
from melisma.singer.model import ConditionEncoder, SingerConfig


def _mel_bin_of(freq: float) -> int:
    """The mel bin whose filter peaks nearest ``freq``."""
    basis = mel_basis().numpy()
    fft_bin = int(round(freq * N_FFT / SAMPLE_RATE))
    return int(np.argmax(basis[:, fft_bin]))


def test_template_peaks_at_harmonics_and_dips_between():
    t = harmonic_template(torch.tensor([[220.0]]))[0, :, 0]
    for k in (1, 2, 3):
        peak, valley = t[_mel_bin_of(220.0 * k)], t[_mel_bin_of(220.0 * (k + 0.5))]
        assert float(peak) > 0.5 and float(valley) < -1.0
    assert t.shape == (N_MELS,)


def test_template_is_zero_where_unvoiced_and_the_table_matches_the_direct_computation():
    f0 = torch.tensor([[0.0, 110.0, 0.0, 261.6, 523.3, 987.0]])
    fast, exact = harmonic_template(f0), exact_template(f0)
    assert torch.all(fast[0, :, 0] == 0) and torch.all(fast[0, :, 2] == 0)
    assert float((fast - exact).abs().mean()) < 0.02
    assert float(fast[0, :, 1:].abs().mean()) > 0.5  # voiced frames do carry a comb


def test_template_explains_the_fine_structure_of_a_real_harmonic_signal():
    sr, f0 = SAMPLE_RATE, 196.0
    t = np.arange(sr) / sr
    audio = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 40)).astype(np.float32) * 0.1
    mel = log_mel(audio)
    fine = mel - F.avg_pool1d(mel.transpose(1, 2), 9, 1, 4, count_include_pad=False).transpose(1, 2)
    tpl = harmonic_template(torch.full((1, mel.shape[-1]), f0))
    a, b = fine[0, :64, 5:-5].flatten().numpy(), tpl[0, :64, 5:-5].flatten().numpy()
    assert np.corrcoef(a, b)[0, 1] > 0.8


def test_encoder_uses_the_template_only_when_configured():
    cfg = SingerConfig(content_dim=8, hidden=16, prior_layers=1)
    legacy = SingerConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "harmonic_template"})
    assert cfg.harmonic_template and not legacy.harmonic_template
    with pytest.raises(ValueError, match="n_mels"):
        ConditionEncoder(SingerConfig(n_mels=16))
    torch.manual_seed(0)
    enc = ConditionEncoder(cfg).eval()
    content, loud, w = torch.zeros(1, 8, 20), torch.full((1, 20), -20.0), torch.ones(1, 1)
    f_a, f_b = torch.full((1, 20), 220.0), torch.full((1, 20), 220.0 * 2 ** (1 / 12))
    with torch.no_grad():
        moved = enc(content, f_a, loud, w).prior - enc(content, f_b, loud, w).prior
    comb_moved = harmonic_template(f_a) - harmonic_template(f_b)
    # a semitone moves every resolved harmonic, and the (untrained) prior's low bins move with the comb
    low = slice(0, 48)
    r = np.corrcoef(moved[0, low].flatten().numpy(), comb_moved[0, low].flatten().numpy())[0, 1]
    assert r > 0.5
