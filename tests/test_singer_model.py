"""EDM teacher and consistency student of the singer model, on tiny configs."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from singer_standins import TINY

from melisma.singer.consistency import (
    consistency_fn,
    consistency_sample,
    distillation_loss,
    ema_update,
    one_step_loss,
)
from melisma.singer.edm import (
    P_MEAN,
    SIGMA_DATA,
    SIGMA_MAX,
    SIGMA_MIN,
    edm_denoise,
    edm_loss,
    edm_precond,
    karras_sigmas,
    loss_weight,
    sample_training_sigma,
)
from melisma.singer.model import (
    Condition,
    SingerConfig,
    SingerNet,
    denormalise_mel,
    normalise_mel,
    prior_loss,
)

T = 16
SMALL = replace(TINY, n_mels=16)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared CPU run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sigma_data_moves_the_training_noise_and_the_preconditioning():
    wide = sample_training_sigma(20000, torch.Generator().manual_seed(0), SIGMA_DATA)
    narrow = sample_training_sigma(20000, torch.Generator().manual_seed(0), 0.1)
    assert abs(float(wide.log().median()) - P_MEAN) < 0.05
    assert torch.allclose(narrow, wide * 0.1 / SIGMA_DATA, rtol=1e-5)
    net = SingerNet(replace(TINY, sigma_data=0.1))
    torch.nn.init.zeros_(net.denoiser.head.weight)
    torch.nn.init.zeros_(net.denoiser.head.bias)
    x = torch.randn(1, TINY.n_mels, 8)
    hidden = torch.zeros(1, TINY.hidden, 8)
    # with F = 0 the denoiser keeps c_skip of its input: one half where sigma equals the model's sigma_data
    assert torch.allclose(edm_denoise(net, x, torch.tensor([0.1]), hidden), 0.5 * x, atol=1e-6)


def test_edm_preconditioning_identities():
    sigma = torch.tensor([0.002, 0.1, SIGMA_DATA, 1.0, 80.0])
    p = edm_precond(sigma)
    at = edm_precond(torch.tensor([SIGMA_DATA]))
    assert torch.allclose(at.c_skip, torch.tensor([0.5]))
    assert torch.allclose(at.c_out, torch.tensor([SIGMA_DATA / 2**0.5]))
    # unit-variance network input and target, and unit effective loss weight
    assert torch.allclose(p.c_in**2 * (sigma**2 + SIGMA_DATA**2), torch.ones(5))
    assert torch.allclose(p.c_skip * (sigma**2 + SIGMA_DATA**2), torch.full((5,), SIGMA_DATA**2))
    assert torch.allclose(loss_weight(sigma) * p.c_out**2, torch.ones(5), rtol=1e-4)
    assert torch.allclose(p.c_noise, sigma.log() / 4)


def test_karras_schedule_and_consistency_boundary():
    s = karras_sigmas(10)
    assert s[0].item() == pytest.approx(SIGMA_MAX, rel=1e-5) and s[-1].item() == pytest.approx(SIGMA_MIN, rel=1e-4)
    assert bool((s[1:] < s[:-1]).all())
    net = SingerNet(TINY)
    torch.nn.init.normal_(net.denoiser.head.weight)  # a non-zero network: the boundary must still hold
    x = torch.randn(2, 128, T)
    cond = torch.randn(2, TINY.hidden, T)
    assert torch.allclose(consistency_fn(net, x, torch.full((2,), SIGMA_MIN), cond), x, atol=1e-6)


def test_mel_normalisation_round_trip():
    mel = torch.linspace(-11.0, 1.5, 50)
    assert torch.allclose(denormalise_mel(normalise_mel(mel)), mel, atol=1e-5)
    assert normalise_mel(mel).abs().max() <= 1.0


def _rep(cond: Condition, n: int) -> Condition:
    return Condition(cond.hidden.repeat(n, 1, 1), cond.prior.repeat(n, 1, 1))


def _overfit_problem():
    torch.manual_seed(0)
    mel = torch.tanh(torch.randn(1, SMALL.n_mels, T)) * 0.8
    inputs = (torch.randn(1, 8, T), torch.full((1, T), 220.0), torch.full((1, T), -20.0), torch.tensor([[1.0, 0.0]]))
    return mel, inputs


@pytest.fixture(scope="module")
def overfit_teacher():
    """A tiny teacher trained on one segment; returns (teacher, mel, inputs, loss before, loss after)."""
    mel, inputs = _overfit_problem()
    teacher = SingerNet(SMALL)

    def eval_loss():
        with torch.no_grad():
            c = _rep(teacher.condition(*inputs), 64)
            return float(edm_loss(teacher, mel.repeat(64, 1, 1), c, generator=torch.Generator().manual_seed(5)))

    before = eval_loss()
    opt = torch.optim.Adam(teacher.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        cond = _rep(teacher.condition(*inputs), 4)
        loss = edm_loss(teacher, mel.repeat(4, 1, 1), cond, generator=gen) + prior_loss(cond, mel.repeat(4, 1, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher, mel, inputs, before, eval_loss()


def test_teacher_loss_decreases_on_tiny_overfit(overfit_teacher):
    _, _, _, before, after = overfit_teacher
    assert after < 0.7 * before


def test_student_one_step_shape_and_distillation_improves(overfit_teacher):
    teacher, mel, inputs, _, _ = overfit_teacher
    student = copy.deepcopy(teacher)
    ema = copy.deepcopy(student)

    def one_step_error():
        with torch.no_grad():
            out = consistency_sample(ema, ema.condition(*inputs), SMALL.n_mels, 1, torch.Generator().manual_seed(1))
        assert out.shape == (1, SMALL.n_mels, T) and torch.isfinite(out).all()
        return float((out - mel).abs().mean())

    before = one_step_error()
    opt = torch.optim.Adam(student.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        with torch.no_grad():
            tc, ec = _rep(teacher.condition(*inputs), 4), _rep(ema.condition(*inputs), 4)
        sc = _rep(student.condition(*inputs), 4)
        loss = distillation_loss(student, ema, teacher, mel.repeat(4, 1, 1), sc, tc, ec, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(ema, student, 0.9)
    after = one_step_error()
    assert after < 0.9 * before, (before, after)
    two = consistency_sample(ema, ema.condition(*inputs), SMALL.n_mels, 3, torch.Generator().manual_seed(1))
    assert two.shape == (1, SMALL.n_mels, T) and torch.isfinite(two).all()


def test_one_step_loss_is_the_one_step_samples_error_and_training_on_it_lowers_it(overfit_teacher):
    teacher, mel, inputs, _, _ = overfit_teacher
    student = copy.deepcopy(teacher)

    def sample_error(seed: int) -> float:
        with torch.no_grad():
            out = consistency_sample(student, student.condition(*inputs), SMALL.n_mels, 1,
                                     torch.Generator().manual_seed(seed))
        return float((out - mel).abs().mean())

    with torch.no_grad():
        loss = one_step_loss(student, mel, student.condition(*inputs), generator=torch.Generator().manual_seed(3))
    assert float(loss) == pytest.approx(sample_error(3), rel=1e-5)
    before = sum(sample_error(s) for s in range(4)) / 4
    opt = torch.optim.Adam(student.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        loss = one_step_loss(student, mel.repeat(4, 1, 1), _rep(student.condition(*inputs), 4), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = sum(sample_error(s) for s in range(4)) / 4
    assert after < 0.7 * before, (before, after)


def test_the_prior_learns_the_mel_and_samples_are_the_prior_plus_a_residual(overfit_teacher):
    teacher, mel, inputs, _, _ = overfit_teacher
    untrained = SingerNet(SMALL)
    with torch.no_grad():
        cond = teacher.condition(*inputs)
        assert float(prior_loss(cond, mel)) < 0.5 * float(prior_loss(untrained.condition(*inputs), mel))
        one = consistency_sample(teacher, cond, SMALL.n_mels, 1, torch.Generator().manual_seed(2))
        noise = torch.randn((1, SMALL.n_mels, T), generator=torch.Generator().manual_seed(2)) * SIGMA_MAX
        residual = consistency_fn(teacher, noise, torch.full((1,), SIGMA_MAX), cond.hidden)
    assert torch.allclose(one, cond.prior + residual, atol=1e-6)


def test_packs_from_before_the_prior_load_without_one():
    legacy = SMALL.to_dict()
    legacy.pop("prior_layers")
    cfg = SingerConfig.from_dict(legacy)
    assert cfg.prior_layers == 0 and SingerConfig().prior_layers > 0
    net = SingerNet(cfg)
    assert not any(k.startswith("encoder.prior") or k.startswith("encoder.blocks") for k in net.state_dict())
    _, inputs = _overfit_problem()
    cond = net.condition(*inputs)
    assert cond.prior.shape == (1, SMALL.n_mels, T) and not cond.prior.any()


def test_cepstral_content_encoder_grid_and_gain_invariance():
    from melisma.content.cepstral import CepstralContentEncoder

    enc = CepstralContentEncoder()
    t = torch.arange(44_100) / 44_100
    torch.manual_seed(0)
    x = (0.3 * torch.sin(2 * torch.pi * 220 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t)))[None]
    x = x + 0.02 * torch.randn_like(x)  # broadband: no mel bin sits on the log floor
    c = enc(x)
    assert c.shape == (1, enc.dim, 44_100 // 512 + 1)
    assert torch.allclose(enc(0.25 * x), c, atol=1e-2)  # a gain only moves c0, which is left out
