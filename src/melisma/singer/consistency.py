"""Consistency distillation (Song et al. 2023, as CoMoSVC uses it): a student of the teacher's architecture that
maps any point of the teacher's ODE trajectory straight to its end, so ONE step from sigma_max gives the mel.

f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), hidden) with the boundary-condition
coefficients c_skip(sigma_min) = 1, c_out(sigma_min) = 0, over the residual mel - prior like the teacher.
"""

from __future__ import annotations

import torch
from torch import nn

from melisma.singer.edm import SIGMA_DATA, SIGMA_MAX, SIGMA_MIN, edm_denoise, karras_sigmas, per_item
from melisma.singer.model import Condition, SingerNet, masked_mean

N_DISCRETISATION = 40  # points on the Karras schedule used for distillation


def consistency_coeffs(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) for noise levels (B,): f is the identity at sigma_min."""
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    c_in = 1.0 / (sigma**2 + sigma_data**2).sqrt()
    return c_skip, c_out, c_in, sigma.log() / 4.0


def consistency_fn(net: SingerNet, x: torch.Tensor, sigma: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """f(x, sigma): noisy residual (B, M, T) at noise levels sigma (B,) -> clean residual estimate (B, M, T)."""
    c_skip, c_out, c_in, c_noise = consistency_coeffs(sigma, net.cfg.sigma_data)
    return per_item(c_skip) * x + per_item(c_out) * net(per_item(c_in) * x, c_noise, hidden)


def heun_step(teacher: SingerNet, x: torch.Tensor, s_hi: torch.Tensor, s_lo: torch.Tensor, hidden: torch.Tensor
              ) -> torch.Tensor:
    """Teacher's Heun step of the probability-flow ODE from s_hi (B,) to s_lo (B,) (both > 0)."""
    d = (x - edm_denoise(teacher, x, s_hi, hidden)) / per_item(s_hi)
    x_euler = x + per_item(s_lo - s_hi) * d
    d_next = (x_euler - edm_denoise(teacher, x_euler, s_lo, hidden)) / per_item(s_lo)
    return x + per_item(s_lo - s_hi) * 0.5 * (d + d_next)


def distillation_loss(student: SingerNet, ema: SingerNet, teacher: SingerNet, mel: torch.Tensor,
                      student_cond: Condition, teacher_cond: Condition, ema_cond: Condition,
                      mask: torch.Tensor | None = None, n: int = N_DISCRETISATION,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Consistency-distillation loss on normalised mel (B, M, T).

    Pick a schedule index i, noise the data to sigma_i, let the teacher take one Heun step back to sigma_{i+1}
    (less noise), and pull the student at (x_i, sigma_i) towards the EMA student at (x_{i+1}, sigma_{i+1}).
    The noisy points are residuals to the teacher's prior; estimates compare as mel (prior + residual), so
    they agree exactly when the three share one encoder (as training arranges).
    """
    sigmas = karras_sigmas(n)  # descending
    b = mel.shape[0]
    idx = torch.randint(0, n - 1, (b,), generator=generator)
    s_hi, s_lo = sigmas[idx].to(mel), sigmas[idx + 1].to(mel)
    residual = mel - teacher_cond.prior.detach()
    x_hi = residual + per_item(s_hi) * torch.randn(mel.shape, generator=generator).to(mel)
    with torch.no_grad():
        x_lo = heun_step(teacher, x_hi, s_hi, s_lo, teacher_cond.hidden)
        target = ema_cond.prior + consistency_fn(ema, x_lo, s_lo, ema_cond.hidden)
    pred = student_cond.prior + consistency_fn(student, x_hi, s_hi, student_cond.hidden)
    return masked_mean((pred - target) ** 2, mask)


def one_step_loss(student: SingerNet, mel: torch.Tensor, cond: Condition, mask: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """L1 between the student's ONE-step sample (from pure noise at sigma_max) and the true normalised mel.

    Consistency distillation alone only ties the student to the teacher's trajectories; where the teacher is
    under-trained (a CPU-sized run) its trajectory ends are poor, and this term anchors the output that
    conversion actually uses to the data."""
    b = mel.shape[0]
    noise = torch.randn(mel.shape, generator=generator).to(mel) * SIGMA_MAX
    pred = cond.prior + consistency_fn(student, noise, torch.full((b,), SIGMA_MAX).to(mel), cond.hidden)
    return masked_mean((pred - mel).abs(), mask)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter; a frozen parameter of ``model`` is copied
    (averaging equal values would still drift it by float rounding)."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        if pm.requires_grad:
            pe.mul_(decay).add_(pm.detach(), alpha=1.0 - decay)
        else:
            pe.copy_(pm.detach())


@torch.no_grad()
def consistency_sample(net: SingerNet, cond: Condition, n_mels: int, steps: int = 1,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Student sampling: condition -> normalised mel (B, n_mels, T) (prior + sampled residual).

    steps = 1: one evaluation at sigma_max.  steps = K > 1: multi-step consistency sampling, re-noising the
    estimate to K - 1 intermediate levels of the Karras schedule and mapping back each time.
    """
    h = cond.hidden
    b, _, t = h.shape
    noise = torch.randn((b, n_mels, t), generator=generator).to(h)
    x0 = consistency_fn(net, noise * SIGMA_MAX, torch.full((b,), SIGMA_MAX).to(h), h)
    if steps > 1:
        levels = karras_sigmas(steps + 1)[1:-1].tolist()
        for s in levels:
            z = torch.randn((b, n_mels, t), generator=generator).to(h)
            x = x0 + (s**2 - SIGMA_MIN**2) ** 0.5 * z
            x0 = consistency_fn(net, x, torch.full((b,), s).to(h), h)
    return cond.prior + x0
