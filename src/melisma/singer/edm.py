"""EDM (Karras et al. 2022) teacher: preconditioning, training noise and loss, Karras sigmas, Euler/Heun sampler.

D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), hidden), over the residual
normalised mel - prior (see ``melisma.singer.model.Condition``; the prior is zero for a model without one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from melisma.singer.model import Condition, SingerNet, masked_mean

SIGMA_DATA = 0.5
SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
P_MEAN = -1.2  # log-normal training noise: ln(sigma) ~ N(P_MEAN + ln(sigma_data / SIGMA_DATA), P_STD^2)
P_STD = 1.2


@dataclass(frozen=True)
class Precond:
    c_skip: torch.Tensor
    c_out: torch.Tensor
    c_in: torch.Tensor
    c_noise: torch.Tensor


def edm_precond(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> Precond:
    """EDM coefficients for noise levels ``sigma`` (B,), each returned with shape (B,) ."""
    s2 = sigma**2 + sigma_data**2
    return Precond(
        c_skip=sigma_data**2 / s2,
        c_out=sigma * sigma_data / s2.sqrt(),
        c_in=1.0 / s2.sqrt(),
        c_noise=sigma.log() / 4.0,
    )


def loss_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2: unit effective weight on F."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def per_item(v: torch.Tensor) -> torch.Tensor:
    """(B,) per-item scalars (sigmas, weights) -> (B, 1, 1), to broadcast over (B, M, T) mels."""
    return v[:, None, None]


def edm_denoise(net: SingerNet, x: torch.Tensor, sigma: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """D(x; sigma): noisy residual (B, M, T), sigma (B,) -> denoised residual estimate (B, M, T)."""
    p = edm_precond(sigma, net.cfg.sigma_data)
    return per_item(p.c_skip) * x + per_item(p.c_out) * net(per_item(p.c_in) * x, p.c_noise, hidden)


def sample_training_sigma(batch: int, generator: torch.Generator | None = None, sigma_data: float = SIGMA_DATA
                          ) -> torch.Tensor:
    """(batch,) noise levels from EDM's log-normal distribution, moved with ``sigma_data`` (EDM's is for 0.5)."""
    return (torch.randn(batch, generator=generator) * P_STD + P_MEAN + math.log(sigma_data / SIGMA_DATA)).exp()


def edm_loss(net: SingerNet, mel: torch.Tensor, cond: Condition, mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Weighted denoising loss on a batch of normalised mel (B, M, T) (its residual to the prior, which this
    loss does not train); ``mask`` (B, 1, T) marks valid frames."""
    residual = mel - cond.prior.detach()
    sigma_data = net.cfg.sigma_data
    sigma = sample_training_sigma(mel.shape[0], generator, sigma_data).to(mel)
    noise = torch.randn(mel.shape, generator=generator).to(mel)
    denoised = edm_denoise(net, residual + per_item(sigma) * noise, sigma, cond.hidden)
    return masked_mean(per_item(loss_weight(sigma, sigma_data)) * (denoised - residual) ** 2, mask)


def karras_sigmas(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
                  ) -> torch.Tensor:
    """(n,) noise levels from sigma_max down to sigma_min on Karras' rho schedule (n >= 2)."""
    ramp = torch.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def ode_step(net: SingerNet, x: torch.Tensor, sigma: float, sigma_next: float, hidden: torch.Tensor,
             heun: bool = True) -> torch.Tensor:
    """One step of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma, from sigma to sigma_next."""
    b = x.shape[0]
    s = torch.full((b,), sigma, dtype=x.dtype)
    d = (x - edm_denoise(net, x, s, hidden)) / sigma
    x_next = x + (sigma_next - sigma) * d
    if heun and sigma_next > 0:
        s_next = torch.full((b,), sigma_next, dtype=x.dtype)
        d_next = (x_next - edm_denoise(net, x_next, s_next, hidden)) / sigma_next
        x_next = x + (sigma_next - sigma) * 0.5 * (d + d_next)
    return x_next


@torch.no_grad()
def edm_sample(net: SingerNet, cond: Condition, n_mels: int, steps: int = 20, heun: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Teacher sampling: condition -> normalised mel (B, n_mels, T) in ``steps`` Karras steps."""
    b, _, t = cond.hidden.shape
    sigmas = karras_sigmas(max(steps, 2)).tolist() + [0.0]
    x = torch.randn((b, n_mels, t), generator=generator).to(cond.hidden) * sigmas[0]
    for i in range(len(sigmas) - 1):
        x = ode_step(net, x, sigmas[i], sigmas[i + 1], cond.hidden, heun=heun and sigmas[i + 1] > 0)
    return cond.prior + x
