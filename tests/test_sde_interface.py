"""Every forward SDE of the project implements one interface, ``scorefusion.sde.SDE``.

For each SDE (the library's VESDE and VPSDE, and the diffusers schedule as a VP
SDE) the closed-form marginal is checked against a Monte Carlo of the SDE itself
(Euler-Maruyama of the forward SDE from a point mass), the prior density is
checked to be normalised and to match the prior's sampler, and log_likelihood
runs and matches the exact density of a Gaussian.
"""

import math

import pytest
import torch
from diffusers import DDPMScheduler

import scorefusion as sf
from scorefusion import sampling
from scorefusion._checks import check_sde
from scorefusion.integrations.diffusers import DDPMScheduleSDE

SDES = {
    "VESDE": sf.VESDE(),
    "VESDE-sigma5-T0.5": sf.VESDE(sigma=5.0, T=0.5),
    "VPSDE": sf.VPSDE(),
    "VPSDE-T2": sf.VPSDE(beta_min=0.1, beta_max=10.0, T=2.0),
    "DDPMScheduleSDE-linear": DDPMScheduleSDE(DDPMScheduler(num_train_timesteps=1000)),
    "DDPMScheduleSDE-scaled": DDPMScheduleSDE(DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear")),
}
VP_TYPE = {"VPSDE", "VPSDE-T2", "DDPMScheduleSDE-linear", "DDPMScheduleSDE-scaled"}
PARAMS = pytest.mark.parametrize("name", list(SDES))


def gen(seed):
    return torch.Generator().manual_seed(seed)


@PARAMS
def test_every_sde_implements_the_base(name):
    sde = SDES[name]
    assert isinstance(sde, sf.SDE) and check_sde(sde) is sde
    assert isinstance(sde, sf.VPTypeSDE) == (name in VP_TYPE)
    assert isinstance(sde.T, float) and sde.T > 0
    x = torch.randn(5, 3, dtype=torch.float64, generator=gen(0))
    t = torch.linspace(0.1, sde.T, 5, dtype=torch.float64)
    drift, diffusion = sde.sde(x, t)
    assert drift.shape == x.shape and diffusion.shape == t.shape
    scale, std = sde.marginal(t)
    assert scale.shape == t.shape and std.shape == t.shape
    assert torch.isfinite(scale).all() and (std > 0).all()
    scale0, std0 = sde.marginal(0.0)
    assert float(scale0) == 1.0 and float(std0) == 0.0
    with pytest.raises(ValueError, match="t must lie"):
        sde.marginal(-0.5)
    with pytest.raises(ValueError, match="t must lie"):
        sde.marginal(torch.tensor([0.5 * sde.T, 1.5 * sde.T]))


def test_the_bases_are_abstract():
    with pytest.raises(TypeError):
        sf.SDE()
    with pytest.raises(TypeError):
        sf.VPTypeSDE()
    with pytest.raises(TypeError, match="sde"):
        check_sde(object())


@PARAMS
def test_marginal_matches_a_monte_carlo_of_the_sde(name):
    # Euler-Maruyama of dx = f dt + g dw from the point mass x_0 = 2; compare mean and std at three times
    sde, x0, n_paths, n_steps = SDES[name], 2.0, 20000, 1000
    checkpoints = {n_steps // 10: None, n_steps // 2: None, n_steps: None}
    dt = sde.T / n_steps
    x = torch.full((n_paths, 1), x0, dtype=torch.float64)
    g = gen(1)
    for k in range(n_steps):
        t = torch.full((n_paths,), k * dt, dtype=torch.float64)
        drift, diffusion = sde.sde(x, t)
        x = x + drift * dt + diffusion.reshape(-1, 1) * math.sqrt(dt) * torch.randn(x.shape, generator=g,
                                                                                      dtype=torch.float64)
        if k + 1 in checkpoints:
            checkpoints[k + 1] = x[:, 0].clone()
    for k, xs in checkpoints.items():
        scale, std = (float(v) for v in sde.marginal(torch.tensor(k * dt, dtype=torch.float64)))
        se_mean = std / math.sqrt(n_paths)
        assert abs(float(xs.mean()) - scale * x0) < 5 * se_mean + 0.01 * abs(scale * x0), (k, float(xs.mean()))
        # std: MC error ~ 1/sqrt(2n) ~ 0.5%, Euler bias O(dt) ~ 0.3% (g^2 grows as sigma^{2t} on VE)
        assert abs(float(xs.std()) / std - 1) < 0.02, (k, float(xs.std()), std)


@PARAMS
def test_prior_density_is_normalised_and_matches_the_sampler(name):
    sde = SDES[name]
    std = float(sde.prior_sample((200000, 1), generator=gen(2), dtype=torch.float64).std())
    grid = torch.linspace(-12 * std, 12 * std, 20001, dtype=torch.float64)
    density = sde.prior_log_prob(grid.reshape(-1, 1)).exp()
    assert abs(float(torch.trapezoid(density, grid)) - 1) < 1e-8
    second_moment = float(torch.trapezoid(density * grid**2, grid))
    assert abs(math.sqrt(second_moment) / std - 1) < 0.01
    # in D dimensions the density factorises over coordinates
    z = torch.randn(7, 2, 3, dtype=torch.float64, generator=gen(3))
    per_coordinate = sde.prior_log_prob(z.reshape(-1, 1)).reshape(7, 6).sum(1)
    assert torch.allclose(sde.prior_log_prob(z), per_coordinate)
    # the prior approximates p_T of data near the origin: its std is the marginal's at T
    _, std_T = sde.marginal(torch.tensor(sde.T, dtype=torch.float64))
    assert abs(std / float(std_T) - 1) < 0.01


@PARAMS
def test_log_likelihood_runs_with_every_sde(name):
    # data N(0, c I): p_t = N(0, v_t I), v_t = scale_t^2 c + std_t^2, and the probability-flow map is
    # x_T = x_eps sqrt(v_T / v_eps); so log_likelihood, which uses the SDE's own prior, must equal
    # log p_eps(x_0) + log prior(x_T) - log p_T(x_T)
    sde, c, eps = SDES[name], 0.7, 1e-5
    dist = sf.Gaussian([0.0, 0.0], [[c, 0.0], [0.0, c]])
    x0 = dist.sample(6, generator=gen(4))
    ll = sampling.log_likelihood(sf.AnalyticScore(dist, sde), x0, sde, eps=eps)
    assert ll.shape == (6,) and ll.dtype == torch.float64 and torch.isfinite(ll).all()
    (scale_eps, scale_T), (std_eps, std_T) = sde.marginal(torch.tensor([eps, sde.T], dtype=torch.float64))
    v_eps, v_T = scale_eps**2 * c + std_eps**2, scale_T**2 * c + std_T**2
    x_T = x0 * torch.sqrt(v_T / v_eps)
    p_T = sf.Gaussian([0.0, 0.0], (v_T * torch.eye(2, dtype=torch.float64)).tolist())
    expected = dist.noised(sde, eps).log_prob(x0) + sde.prior_log_prob(x_T) - p_T.log_prob(x_T)
    assert torch.allclose(ll, expected, atol=1e-2), (ll - expected).abs().max()
