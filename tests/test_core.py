"""Unit tests of the exact core: distributions, SDEs, scores, barycenters, fusion, metrics."""

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs
from toy_nets import TinyScore

import scorefusion as sf
from lab.gaussians import random_gaussians
from scorefusion.barycenter import GeometricMixture, _gaussian_product, kl_barycenter
from scorefusion.data import paper_1d
from scorefusion.sde import time_grid


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- distributions ---------------------------------------------------------

def test_mixture_log_prob_matches_scipy():
    mix = sf.GaussianMixture([0.3, 0.7], [[0.0, 1.0], [2.0, 3.0]], [[[1, 0.2], [0.2, 2]], [[1, 0], [0, 1]]])
    x = torch.randn(50, 2, generator=gen(), dtype=torch.float64)
    ref = np.log(0.3 * st.multivariate_normal([0, 1], [[1, 0.2], [0.2, 2]]).pdf(x.numpy())
                 + 0.7 * st.multivariate_normal([2, 3], np.eye(2)).pdf(x.numpy()))
    assert np.allclose(mix.log_prob(x).numpy(), ref, atol=1e-12)
    assert mix.log_prob(x).dtype == torch.float64 and mix.log_prob(x).shape == (50,)


def test_score_is_gradient_of_log_prob():
    mix = paper_1d().aux[0]
    x = torch.linspace(-8, 14, 40, dtype=torch.float64)[:, None].requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
    assert torch.allclose(mix.score(x.detach()), grad, atol=1e-12)


def test_sample_moments_and_determinism():
    g = sf.Gaussian([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]])
    a = g.sample(200_000, generator=gen(1))
    assert torch.equal(a, g.sample(200_000, generator=gen(1)))
    assert torch.allclose(a.mean(0), g.mean, atol=0.02)
    assert torch.allclose(torch.cov(a.T), g.cov, atol=0.03)


def test_float32_inputs_keep_dtype():
    g = sf.Gaussian(torch.zeros(2), torch.eye(2))
    assert g.dtype == torch.float32 and g.sample(3, generator=gen()).dtype == torch.float32


def test_noised_density_api_matches_noised_distribution():
    """score/log_prob/score_and_divergence(x, scale, std) are those of scale*X + std*Z, per point."""
    mix = sf.GaussianMixture([0.3, 0.7], [[0.0, 1.0], [2.0, -1.0]], [[[1, 0.4], [0.4, 2]], [[0.5, 0], [0, 1]]])
    sde = sf.VPSDE()
    x = torch.randn(6, 2, generator=gen(2), dtype=torch.float64)
    t = torch.tensor([0.05, 0.2, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    scale, std = sde.marginal(t)
    score, div = mix.score_and_divergence(x, scale, std)
    for i in range(6):
        noised = mix.noised(sde, float(t[i]))
        assert torch.allclose(mix.log_prob(x[i:i + 1], scale[i], std[i]), noised.log_prob(x[i:i + 1]), atol=1e-12)
        assert torch.allclose(mix.score(x[i:i + 1], float(scale[i]), float(std[i])), noised.score(x[i:i + 1]),
                              atol=1e-12)
        assert torch.allclose(score[i], noised.score(x[i:i + 1])[0], atol=1e-12)
    xg = x.clone().requires_grad_(True)
    hessian_trace = sum(torch.autograd.grad(mix.score(xg, scale, std)[:, j].sum(), xg, retain_graph=True)[0][:, j]
                        for j in range(2))
    assert torch.allclose(div, hessian_trace, atol=1e-10)
    assert torch.equal(mix.score(x), mix.score(x, 1.0, 0.0))


def test_eigendecomposition_accessors_reconstruct_the_covariances():
    mix = paper_1d().aux[0]
    evals, evecs = mix.covs_eigh
    assert evals.shape == (mix.n_components, 1) and evecs.shape == (mix.n_components, 1, 1)
    assert torch.allclose(evecs @ torch.diag_embed(evals) @ evecs.mT, mix.covs, atol=1e-12)
    g = sf.Gaussian([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]])
    e, u = g.cov_eigh
    assert torch.allclose((u * e) @ u.T, g.cov, atol=1e-12) and bool((e > 0).all())


def test_sample_gaussian_moments_and_determinism():
    from scorefusion.distributions import sample_gaussian

    g = sf.Gaussian([1.0, -2.0, 0.5], [[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.7]])
    a = sample_gaussian(g, 200_000, generator=gen(3))
    assert torch.equal(a, sample_gaussian(g, 200_000, generator=gen(3)))
    assert torch.allclose(a.mean(0), g.mean, atol=0.02)
    assert torch.allclose(torch.cov(a.T), g.cov, atol=0.03)


def test_kl_gaussian_against_formula_1d():
    p, q = sf.Gaussian([0.0], [[1.0]]), sf.Gaussian([1.0], [[4.0]])
    expected = math.log(2.0) + (1 + 1) / (2 * 4) - 0.5
    assert abs(sf.kl_gaussian(p, q).item() - expected) < 1e-12


# -- SDEs --------------------------------------------------------------------

def test_vesde_marginal_formula():
    sde = sf.VESDE(25.0)
    scale, std = sde.marginal(torch.tensor([0.5], dtype=torch.float64))
    assert scale.item() == 1.0
    assert abs(std.item() - math.sqrt((25.0 ** 1.0 - 1) / (2 * math.log(25.0)))) < 1e-12
    drift, diffusion = sde.sde(torch.ones(2, 3), torch.tensor([0.0, 1.0]))
    assert torch.equal(drift, torch.zeros(2, 3)) and torch.allclose(diffusion, torch.tensor([1.0, 25.0]))


def test_vpsde_is_variance_preserving():
    sde = sf.VPSDE()
    scale, std = sde.marginal(torch.linspace(0.01, 1, 5, dtype=torch.float64))
    assert torch.allclose(scale**2 + std**2, torch.ones(5, dtype=torch.float64))
    assert sde.prior_sample((4, 2), generator=gen()).shape == (4, 2)


def test_time_grid_decreasing():
    times = time_grid(sf.VESDE(), 10, eps=1e-3)
    assert times[0] == 1.0 and abs(times[-1] - 1e-3) < 1e-12 and (times.diff() < 0).all()


# -- barycenters -------------------------------------------------------------

def test_one_hot_lam_returns_the_model():
    dists = random_gaussians(3, 3, gen(2))
    bary = kl_barycenter(dists, [0.0, 1.0, 0.0])
    assert torch.allclose(bary.mean, dists[1].mean) and torch.allclose(bary.cov, dists[1].cov)
    mix = paper_1d().aux
    assert torch.allclose(kl_barycenter(mix, [1.0, 0.0]).means, mix[0].means)


@settings(max_examples=25, deadline=None)
@given(perm=hs.permutations([0, 1, 2]), w=hs.lists(hs.floats(0.05, 1.0), min_size=3, max_size=3))
def test_barycenter_is_permutation_invariant(perm, w):
    dists = random_gaussians(3, 2, gen(3))
    lam = torch.tensor(w, dtype=torch.float64)
    lam = lam / lam.sum()
    a = kl_barycenter(dists, lam)
    b = kl_barycenter([dists[i] for i in perm], lam[list(perm)])
    assert torch.allclose(a.mean, b.mean, atol=1e-10) and torch.allclose(a.cov, b.cov, atol=1e-10)


def test_integer_power_mixture_barycenter_is_exact():
    # lam = (1, 0): exact; lam = (1/2, 1/2) of a mixture with itself: p^(1/2) p^(1/2) = p
    p = paper_1d().aux[1]
    geo = GeometricMixture([p, p], [0.5, 0.5])
    x = torch.linspace(-10, 12, 30, dtype=torch.float64)[:, None]
    assert torch.allclose(geo.log_prob(x), p.log_prob(x), atol=1e-8)


def test_geometric_mixture_high_dim_normaliser_with_stderr():
    dists = random_gaussians(2, 6, gen(4))
    geo = GeometricMixture(dists, [0.3, 0.7], n_importance=20000, generator=gen(5))
    log_z, stderr = geo.log_normalizer()
    exact = kl_barycenter(dists, [0.3, 0.7])
    x = exact.sample(10, generator=gen(6))
    assert stderr < 1e-6  # the Gaussian proposal is exact, so the weights are constant
    _, _, log_c = _gaussian_product(torch.tensor([0.3, 0.7], dtype=torch.float64),
                                    torch.stack([d.mean for d in dists]), torch.stack([d.cov for d in dists]))
    assert abs(log_z - log_c.item()) < 1e-8
    assert torch.allclose(geo.log_prob(x), exact.log_prob(x), atol=1e-6)
    assert geo.sample(100, generator=gen(7)).shape == (100, 6)


def test_geometric_mixture_sampling_1d_and_2d():
    p = paper_1d()
    geo = GeometricMixture(p.aux, [0.5, 0.5])
    x = geo.sample(50_000, generator=gen(8))
    assert sf.tv_histogram(x, geo, bins=100) < 0.03
    dists = random_gaussians(2, 2, gen(9))
    geo2 = GeometricMixture(dists, [0.4, 0.6], n_grid=401)
    y = geo2.sample(50_000, generator=gen(10))
    exact = kl_barycenter(dists, [0.4, 0.6])
    assert torch.allclose(y.mean(0), exact.mean, atol=0.03)
    assert torch.allclose(torch.cov(y.T), exact.cov, atol=0.05)


# -- scores -----------------------------------------------------------------

def test_analytic_score_divergence_matches_autograd():
    mix = paper_1d().aux[0]
    score = sf.AnalyticScore(sf.GaussianMixture(mix.weights, mix.means, mix.covs), sf.VESDE())
    x = torch.linspace(-6, 12, 20, dtype=torch.float64)[:, None].requires_grad_(True)
    t = torch.full((20,), 0.1, dtype=torch.float64)
    (grad,) = torch.autograd.grad(score(x, t).sum(), x)
    assert torch.allclose(score.divergence(x.detach(), t), grad[:, 0], atol=1e-10)


def test_fused_score_one_hot_and_linearity():
    sde = sf.VESDE()
    aux = [sf.AnalyticScore(d, sde) for d in paper_1d().aux]
    x = torch.randn(10, 1, generator=gen(), dtype=torch.float64)
    t = torch.rand(10, generator=gen(1), dtype=torch.float64) * 0.9 + 0.05
    assert torch.allclose(sf.FusedScore(aux, [1.0, 0.0])(x, t), aux[0](x, t))
    mid = sf.FusedScore(aux, [0.25, 0.75])(x, t)
    assert torch.allclose(mid, 0.25 * aux[0](x, t) + 0.75 * aux[1](x, t))


def test_fused_score_batches_same_architecture_modules():
    torch.manual_seed(0)
    nets = [TinyScore() for _ in range(4)]
    fused = sf.FusedScore(nets, [0.1, 0.2, 0.3, 0.4], vectorize=True)
    assert fused.batched
    x, t = torch.randn(8, 2), torch.rand(8)
    with torch.no_grad():
        loop = sum(w * n(x, t) for w, n in zip([0.1, 0.2, 0.3, 0.4], nets))
        assert torch.allclose(fused(x, t), loop, atol=1e-6)


# -- fusion -------------------------------------------------------------------

def test_fit_weights_methods_and_determinism():
    sde, preset = sf.VESDE(), paper_1d()
    aux = [sf.AnalyticScore(d, sde) for d in preset.aux]
    x0 = preset.target.sample(256, generator=gen(11))
    for method in ("ism", "dsm"):
        a = sf.fit_weights(aux, x0, sde, method=method, generator=gen(12))
        b = sf.fit_weights(aux, x0, sde, method=method, generator=gen(12))
        assert torch.equal(a.lam, b.lam) and a.kkt_residual < 1e-9
        assert abs(a.lam.sum().item() - 1) < 1e-12 and a.method == method
    s = sf.fit_weights(aux, x0, sde, method="sgd", epochs=3, generator=gen(13))
    assert len(s.history) == 3 and abs(s.lam.sum().item() - 1) < 1e-12


def test_ism_hutchinson_matches_exact_on_average():
    sde = sf.VESDE()
    dists = random_gaussians(2, 20, gen(14))
    target = kl_barycenter(dists, [0.3, 0.7])
    x0 = target.sample(2000, generator=gen(15))

    def strip(score):  # hide the exact divergence to force autograd / Hutchinson
        return lambda x, t: score(x, t)

    exact = [sf.AnalyticScore(d, sde) for d in dists]
    _, b_exact, _ = sf.ism_quadratic(exact, x0, sde)
    _, b_hutch, _ = sf.ism_quadratic([strip(s) for s in exact], x0, sde, n_probes=4, generator=gen(16))
    assert torch.allclose(b_hutch, b_exact, rtol=0.05)


def test_recovers_planted_lam_with_networks_in_high_dim():
    sde = sf.VESDE()
    dists = random_gaussians(3, 32, gen(17))
    lam_star = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    x0 = kl_barycenter(dists, lam_star).sample(4096, generator=gen(18))
    fit = sf.fit_weights([sf.AnalyticScore(d, sde) for d in dists], x0, sde)
    assert (fit.lam - lam_star).abs().max() < 0.05


# -- metrics ------------------------------------------------------------------

def test_tv_of_gaussians_closed_form():
    p, q = sf.Gaussian([0.0], [[1.0]]), sf.Gaussian([1.0], [[1.0]])
    assert abs(sf.tv_distance(p, q) - (2 * st.norm.cdf(0.5) - 1)) < 1e-8
    d = 40
    p = sf.Gaussian(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    q = sf.Gaussian(torch.full((d,), 0.1, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    value, stderr = sf.tv_distance(p, q, generator=gen(19), return_stderr=True)
    assert abs(value - (2 * st.norm.cdf(0.1 * math.sqrt(d) / 2) - 1)) < 4 * stderr + 1e-3


def test_gaussian_tv_matches_tv_distance():
    from scorefusion.metrics import gaussian_tv

    p = sf.Gaussian([0.0, 0.0], [[1.0, 0.3], [0.3, 2.0]])
    q = sf.Gaussian([1.0, -0.5], [[0.5, 0.0], [0.0, 1.5]])
    value, stderr = gaussian_tv(p, q, 100_000, gen(23))
    assert abs(value - sf.tv_distance(p, q)) < 4 * stderr
    same, same_se = gaussian_tv(p, p, 1000, gen(24))
    assert same < 1e-12 and same_se < 1e-12


def test_tv_distance_grid_is_accurate_at_its_minimum_and_refuses_coarse_grids():
    from scorefusion.metrics import MIN_GRID

    p, q = sf.Gaussian([0.0], [[1.0]]), sf.Gaussian([3.0], [[1.0]])
    truth = 2 * st.norm.cdf(1.5) - 1  # 0.866
    assert abs(sf.tv_distance(p, q, n_grid=MIN_GRID) - truth) < 1e-4
    with pytest.raises(ValueError, match=f"at least {MIN_GRID}"):
        sf.tv_distance(p, q, n_grid=1)
    narrow, wide = sf.Gaussian([0.0], [[0.01]]), sf.Gaussian([0.0], [[100.0]])
    with pytest.raises(ValueError, match="n_grid=1001 is too coarse"):  # the narrow one falls between points
        sf.tv_distance(narrow, wide, n_grid=1001)
    cross = math.sqrt(2 * math.log(100.0) / (1 / 0.01 - 1 / 100.0))  # where the two densities meet
    exact = (2 * st.norm.cdf(cross, 0, 0.1) - 1) - (2 * st.norm.cdf(cross, 0, 10) - 1)
    assert abs(sf.tv_distance(narrow, wide) - exact) < 1e-3


def test_tv_histogram_counts_mass_outside_its_range():
    x = sf.Gaussian([0.0], [[1.0]]).sample(20_000, generator=gen(25))
    far = sf.Gaussian([8.0], [[1.0]])
    assert sf.tv_histogram(x, far) > 0.999  # the histogram covers x; q's mass lies beyond it
    same = sf.Gaussian([0.0], [[1.0]])
    # bounds that leave out most of x: that mass is counted (it matches q's outside mass)
    assert sf.tv_histogram(x, same, bounds=(-1.0, 1.0)) < 0.05
    assert sf.tv_histogram(x, sf.Gaussian([3.0], [[1.0]]), bounds=(-1.0, 1.0)) > 0.5


def test_kl_barycenter_refuses_too_many_component_tuples_quickly():
    import time

    two = sf.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
    start = time.perf_counter()
    with pytest.raises(ValueError, match="1048576 component tuples.*max_components=10000"):
        kl_barycenter([two] * 20, [0.05] * 20)
    assert time.perf_counter() - start < 1.0
    assert kl_barycenter([two] * 3, [0.2, 0.3, 0.5], max_components=8).n_components == 8
    with pytest.raises(ValueError, match="max_components=4"):
        kl_barycenter([two] * 3, [0.2, 0.3, 0.5], max_components=4)
    assert kl_barycenter([two] * 3, [0.5, 0.5, 0.0], max_components=4).n_components == 4  # lam = 0 drops out


def test_w1_and_kl():
    x = torch.randn(400, 1, generator=gen(20), dtype=torch.float64)
    assert abs(sf.w1_distance(x, x + 0.5) - 0.5) < 1e-9
    y = torch.randn(200, 2, generator=gen(21), dtype=torch.float64)
    assert abs(sf.w1_distance(y, y + torch.tensor([0.3, 0.4], dtype=torch.float64)) - 0.5) < 1e-9
    p, q = sf.Gaussian([0.0], [[1.0]]), sf.Gaussian([1.0], [[4.0]])
    value, stderr = sf.kl_mc(p, q, generator=gen(22), return_stderr=True)
    assert abs(value - sf.kl_gaussian(p, q).item()) < 4 * stderr


def test_fused_score_vectorizes_only_where_asked():
    """'auto' loops on the CPU (measured faster there) and vectorises on accelerators."""

    nets = [TinyScore() for _ in range(2)]
    auto = sf.FusedScore(nets, [0.5, 0.5])
    assert auto.batched and not auto.vectorized_on("cpu") and auto.vectorized_on("cuda")
    assert sf.FusedScore(nets, [0.5, 0.5], vectorize=True).vectorized_on("cpu")
    never = sf.FusedScore(nets, [0.5, 0.5], vectorize=False)
    assert not never.batched and not never.vectorized_on("cuda")
    x, t = torch.randn(3, 2), torch.rand(3)
    with torch.no_grad():
        assert torch.allclose(auto(x, t), never(x, t), atol=1e-6)
    with pytest.raises(ValueError, match="vectorize"):
        sf.FusedScore(nets, [0.5, 0.5], vectorize="yes")
