"""Samplers and likelihood against closed forms (float64, exact scores of Gaussians and mixtures).

Tolerances are stated at each assert: Monte-Carlo ones are about 4 standard errors plus the
discretisation bias measured once; likelihood ones are the ODE solver's accuracy.
"""

import math

import pytest
import torch

import scorefusion as sf
from scorefusion import sampling
from scorefusion.divergence import EXACT_DIVERGENCE_MAX_DIM, divergence, draw_probes
from scorefusion.nets import ScoreMLP

VP = sf.VPSDE()
VE = sf.VESDE()

GAUSS_2D = sf.Gaussian([1.0, -2.0], [[1.0, 0.5], [0.5, 2.0]])
MIX_1D = sf.GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[[0.25]], [[0.49]]])
MIX_MEAN = 0.3 * -2.0 + 0.7 * 1.5
MIX_VAR = 0.3 * (0.25 + 4.0) + 0.7 * (0.49 + 2.25) - MIX_MEAN**2


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def exact_start(dist, sde, n, seed):
    """Draws from the exact noised marginal p_T (so no prior mismatch enters the test)."""
    return dist.noised(sde, sde.T).sample(n, generator=gen(seed))


# ---------------------------------------------------------------- probability flow


@pytest.mark.parametrize("sde", [VP, VE], ids=["VP", "VE"])
def test_probability_flow_maps_p_T_to_the_target(sde):
    n = 1000
    x_T = exact_start(GAUSS_2D, sde, n, seed=0)
    x, nfe = sampling.probability_flow(sf.AnalyticScore(GAUSS_2D, sde), sde, x_T=x_T, return_nfe=True)
    assert x.dtype == torch.float64 and x.shape == (n, 2) and nfe > 10
    target = GAUSS_2D.noised(sde, 1e-3)
    mean, cov = target.means[0], target.covs[0]
    # MC: se(mean_i) = sqrt(cov_ii / n) <= 0.032, se(cov_ij) <= cov_ii sqrt(2/n) <= 0.063; 4 se
    assert torch.allclose(x.mean(0), mean, atol=4 * math.sqrt(2.0 / n))
    assert torch.allclose(torch.cov(x.T), cov, atol=4 * 2.0 * math.sqrt(2.0 / n))


def test_probability_flow_is_exact_pointwise_for_a_gaussian():
    """For a Gaussian the flow map is affine and known: x_eps = m_eps + A (x_T - m_T), A = S_eps^1/2 S_T^-1/2
    (for commuting covariances, as here with isotropic noise added to one S)."""
    sde = VP
    x_T = exact_start(GAUSS_2D, sde, 50, seed=1)
    x = sampling.probability_flow(sf.AnalyticScore(GAUSS_2D, sde), sde, x_T=x_T, rtol=1e-8, atol=1e-8)
    eps = 1e-3
    evals, evecs = torch.linalg.eigh(GAUSS_2D.covs[0])

    def mean_var(t):
        scale, std = sde.marginal(torch.tensor(t, dtype=torch.float64))
        return scale * GAUSS_2D.means[0], scale**2 * evals + std**2

    m_T, v_T = mean_var(sde.T)
    m_e, v_e = mean_var(eps)
    expected = m_e + ((x_T - m_T) @ evecs * torch.sqrt(v_e / v_T)) @ evecs.T
    assert torch.allclose(x, expected, atol=1e-5)  # solver tolerance 1e-8 (rel) over unit-scale states


def test_probability_flow_from_the_prior_with_vp():
    # VP: p_T differs from N(0, I) by scale_T |m| ~ 0.007, far below the MC tolerance
    x = sampling.probability_flow(sf.AnalyticScore(GAUSS_2D, VP), VP, shape=(1000, 2), generator=gen(2))
    assert torch.allclose(x.mean(0), GAUSS_2D.means[0], atol=4 * math.sqrt(2.0 / 1000))


# ---------------------------------------------------------------- likelihood


class ExactTerminal(sf.SDE):
    """The SDE with its prior replaced by the exact noised marginal p_T (the VE prior N(0, std_T^2) is not p_T)."""

    def __init__(self, sde, dist):
        super().__init__(sde.T)
        self.inner, self.dist = sde, dist

    def marginal(self, t):
        return self.inner.marginal(t)

    def sde(self, x, t):
        return self.inner.sde(x, t)

    def prior_sample(self, *args, **kwargs):
        return self.inner.prior_sample(*args, **kwargs)

    def prior_log_prob(self, z):
        return self.dist.noised(self.inner, self.T).log_prob(z)


@pytest.mark.parametrize("sde", [VP, VE], ids=["VP", "VE"])
@pytest.mark.parametrize("dist", [sf.Gaussian([0.5], [[2.0]]), GAUSS_2D, MIX_1D], ids=["1d", "2d", "mix1d"])
def test_log_likelihood_matches_the_closed_form(dist, sde):
    x0 = dist.sample(20, generator=gen(3))
    # the model density at eps is p_eps = p_0 convolved with N(0, std_eps^2 I), std_eps^2 ~ 1e-5
    exact = dist.noised(sde, 1e-5).log_prob(x0)
    score = sf.AnalyticScore(dist, sde)
    ll = sampling.log_likelihood(score, x0, ExactTerminal(sde, dist))
    assert ll.shape == (20,) and ll.dtype == torch.float64
    assert torch.allclose(ll, exact, atol=1e-2)  # 1e-2 nats: ODE tolerances 1e-5
    if isinstance(sde, sf.VPSDE):
        # with VP the plain prior N(0, I) differs from p_T by its mean scale_T m (|scale_T| = 0.0066),
        # i.e. log-densities by ~ x_T . scale_T m: a few 1e-2 nats for |m| ~ 2
        assert torch.allclose(sampling.log_likelihood(score, x0, sde), exact, atol=6e-2)


def test_log_likelihood_hutchinson_in_20d():
    """20-D correlated Gaussian (so the Rademacher estimator is not exact): Hutchinson vs closed form."""
    d, n = 20, 48
    g = gen(4)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    dist = sf.Gaussian(torch.randn(d, generator=g, dtype=torch.float64), a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64))
    x0 = dist.sample(n, generator=g)
    exact = dist.noised(VP, 1e-5).log_prob(x0)
    score, sde = sf.AnalyticScore(dist, VP), ExactTerminal(VP, dist)  # exact p_T: no prior mismatch
    ll_exact_div = sampling.log_likelihood(score, x0, sde, divergence="exact", rtol=1e-4, atol=1e-4)
    assert torch.allclose(ll_exact_div, exact, atol=2e-2)  # exact divergence: solver accuracy only
    for probe in ("rademacher", "gaussian"):
        ll = sampling.log_likelihood(score, x0, sde, n_probes=4, generator=gen(5), probe=probe, rtol=1e-4, atol=1e-4)
        err = ll - exact
        # unbiased estimator: the mean error over 48 points is within 4 standard errors (+ solver slack)
        assert abs(float(err.mean())) < 4 * float(err.std()) / math.sqrt(n) + 0.02, probe
        # per-point noise: measured std ~1 nat with 4 probes here; the estimator is really stochastic
        # (non-diagonal covariance, so even Rademacher probes are not exact)
        assert 1e-2 < float(err.std()) < 2.0, probe


def test_divergence_exact_and_hutchinson_on_a_linear_field():
    # f(x) = x A^T + tanh(x) (coordinate-wise): div f = tr A + sum_j (1 - tanh(x_j)^2)
    d, n = 5, 7
    g = gen(20)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    truth = torch.trace(a) + (1 - torch.tanh(x) ** 2).sum(1)
    out, div = divergence(lambda z: z @ a.T + torch.tanh(z), x)
    assert torch.allclose(out, x @ a.T + torch.tanh(x)) and torch.allclose(div, truth)
    assert not out.requires_grad and not div.requires_grad
    # Rademacher probes are exact for a diagonal Jacobian, unbiased otherwise
    _, div1 = divergence(lambda z: z * torch.arange(1.0, d + 1, dtype=torch.float64),
                         x, draw_probes(x.shape, 1, gen(21)))
    assert torch.allclose(div1, torch.full((n,), d * (d + 1) / 2, dtype=torch.float64))
    for kind in ("rademacher", "gaussian"):
        probes = draw_probes(x.shape, 4000, gen(22), kind=kind)
        _, est = divergence(lambda z: z @ a.T + torch.tanh(z), x, probes)
        assert torch.allclose(est, truth, atol=0.3), kind  # std ~ |A|_F sqrt(2 / 4000) ~ 0.1
    assert 1 <= EXACT_DIVERGENCE_MAX_DIM < 20  # log_likelihood_hutchinson_in_20d relies on it
    with pytest.raises(ValueError, match="fn must return the shape of x"):
        divergence(lambda z: z[:, 0], x)


def test_log_likelihood_is_reproducible_with_a_generator():
    x0 = GAUSS_2D.sample(8, generator=gen(6))
    score = sf.AnalyticScore(GAUSS_2D, VP)
    runs = [sampling.log_likelihood(score, x0, VP, divergence="hutchinson", generator=gen(7)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = sampling.log_likelihood(score, x0, VP, divergence="hutchinson", generator=gen(8))
    assert not torch.equal(runs[0], other)


def test_bits_per_dim_continuous_and_discrete():
    dist = sf.Gaussian([0.5], [[0.04]])
    score = sf.AnalyticScore(dist, VP)
    x = dist.sample(10, generator=gen(9))
    bpd = sampling.bits_per_dim(score, x, VP)
    assert torch.allclose(bpd, -dist.noised(VP, 1e-5).log_prob(x) / math.log(2), atol=2e-2)
    # discrete: 17 levels on [0, 1] (w = 1/16); the dequantized bound is >= -log2 P(bin) on average
    levels = torch.arange(17, dtype=torch.float64) / 16
    x_disc = levels[torch.randint(4, 13, (400, 1), generator=gen(10))]
    bpd_disc = sampling.bits_per_dim(score, x_disc, VP, n_levels=17, generator=gen(11))
    normal = torch.distributions.Normal(0.5, 0.2)
    p_bin = normal.cdf(x_disc + 1 / 32) - normal.cdf(x_disc - 1 / 32)
    exact_bits = -torch.log2(p_bin).squeeze(1)
    gap = float(bpd_disc.mean() - exact_bits.mean())
    # Jensen gap of a narrow bin: ~ w^2/(24 sigma^2 ln 2) ~ 0.006 bits, plus MC noise ~ 0.01
    assert -0.03 < gap < 0.05
    # the offset: bpd(x) = -(log p(x~) + D ln w)/(D ln 2) -> same number as by hand with the same u
    u = torch.rand(x_disc.shape, generator=gen(11), dtype=torch.float64)
    by_hand = -(dist.noised(VP, 1e-5).log_prob(x_disc + (u - 0.5) / 16) + math.log(1 / 16)) / math.log(2)
    assert torch.allclose(bpd_disc, by_hand, atol=2e-2)


def test_network_scores_run_in_their_own_precision():
    torch.manual_seed(0)
    net = ScoreMLP(VP, 2, hidden=16, depth=1)  # float32 weights; the ODE state is float64
    x = sampling.probability_flow(net, VP, shape=(4, 2), generator=gen(12), rtol=1e-2, atol=1e-2)
    assert x.dtype == torch.float64 and torch.isfinite(x).all()
    ll = sampling.log_likelihood(net, x.float(), VP, rtol=1e-2, atol=1e-2)
    assert ll.shape == (4,) and torch.isfinite(ll).all()
    y = sampling.euler_maruyama(net, VP, (4, 2), n_steps=5, generator=gen(13), dtype=torch.float64)
    assert y.dtype == torch.float64
    fused = sf.FusedScore([net, ScoreMLP(VP, 2, hidden=16, depth=1)], [0.5, 0.5])
    assert sampling.probability_flow(fused, VP, shape=(3, 2), generator=gen(14), rtol=1e-2, atol=1e-2).shape == (3, 2)


# ---------------------------------------------------------------- stochastic samplers


@pytest.mark.parametrize("sampler", ["em", "pc"])
@pytest.mark.parametrize("sde", [VP, VE], ids=["VP", "VE"])
def test_sde_samplers_recover_a_1d_mixture(sampler, sde):
    """VP starts from its prior N(0, I) (= p_T up to 0.0066 |m|); VE from the exact p_T (its prior is not p_T)."""
    n = 4000
    start = {"shape": (n, 1)} if sde is VP else {"x_T": exact_start(MIX_1D, sde, n, seed=15).float()}
    score = sf.AnalyticScore(MIX_1D, sde)
    if sampler == "em":
        x = sampling.euler_maruyama(score, sde, n_steps=100, generator=gen(16), **start)
    else:
        x = sampling.predictor_corrector(score, sde, n_steps=100, generator=gen(16), **start)
    x = x.double().squeeze(1)
    # MC standard errors at n = 4000: mean 0.028, variance ~0.07, weight of the left mode 0.007.
    # Bias measured with n = 20000 at 100 steps: mean < 0.01, variance < 0.03, weight +0.011.
    assert abs(float(x.mean()) - MIX_MEAN) < 0.12
    assert abs(float(x.var()) - MIX_VAR) < 0.3
    assert abs(float((x < 0).double().mean()) - 0.3) < 0.04


@pytest.mark.parametrize("sampler", [sampling.euler_maruyama, sampling.predictor_corrector])
def test_samplers_are_deterministic_given_a_generator(sampler):
    score = sf.AnalyticScore(MIX_1D, VP)
    a = sampler(score, VP, (16, 1), n_steps=20, generator=gen(18))
    b = sampler(score, VP, (16, 1), n_steps=20, generator=gen(18))
    c = sampler(score, VP, (16, 1), n_steps=20, generator=gen(19))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pc_without_corrector_is_euler_maruyama():
    score = sf.AnalyticScore(MIX_1D, VP)
    a = sampling.euler_maruyama(score, VP, (8, 1), n_steps=10, generator=gen(20))
    b = sampling.predictor_corrector(score, VP, (8, 1), n_steps=10, n_corrector=0, generator=gen(20))
    assert torch.equal(a, b)


# ---------------------------------------------------------------- bad input


SCORE = sf.AnalyticScore(GAUSS_2D, VP)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: sampling.euler_maruyama(SCORE, VP), ValueError, "shape"),
    (lambda: sampling.euler_maruyama(SCORE, VP, (4, 2), n_steps=0), ValueError, "n_steps"),
    (lambda: sampling.euler_maruyama(SCORE, VP, (4, 2), eps=0.0), ValueError, "eps"),
    (lambda: sampling.euler_maruyama(SCORE, VP, (4, 2), eps=1.5), ValueError, "eps"),
    (lambda: sampling.euler_maruyama(SCORE, VP, (4, 2), x_T=torch.zeros(3, 2)), ValueError, "disagrees"),
    (lambda: sampling.euler_maruyama(SCORE, VP, x_T=torch.full((3, 2), float("nan"))), ValueError, "NaN"),
    (lambda: sampling.euler_maruyama("score", VP, (4, 2)), TypeError, "score"),
    (lambda: sampling.euler_maruyama(SCORE, "vp", (4, 2)), TypeError, "sde"),
    (lambda: sampling.euler_maruyama(SCORE, VP, (4, 0)), ValueError, "shape"),
    (lambda: sampling.predictor_corrector(SCORE, VP, (4, 2), snr=0.0), ValueError, "snr"),
    (lambda: sampling.predictor_corrector(SCORE, VP, (4, 2), n_corrector=-1), ValueError, "n_corrector"),
    (lambda: sampling.probability_flow(SCORE, VP), ValueError, "shape"),
    (lambda: sampling.probability_flow(SCORE, VP, (4, 2), rtol=0.0), ValueError, "rtol"),
    (lambda: sampling.log_likelihood(SCORE, torch.zeros(0, 2), VP), ValueError, "x0"),
    (lambda: sampling.log_likelihood(SCORE, torch.tensor([[float("nan"), 0.0]]), VP), ValueError, "NaN"),
    (lambda: sampling.log_likelihood(SCORE, VP, torch.zeros(2, 2)), TypeError, "order"),
    (lambda: sampling.log_likelihood(SCORE, torch.zeros(2, 2), VP, divergence="fast"), ValueError, "divergence"),
    (lambda: sampling.log_likelihood(SCORE, torch.zeros(2, 2), VP, probe="cauchy"), ValueError, "probe"),
    (lambda: sampling.log_likelihood(SCORE, torch.zeros(2, 2), VP, n_probes=0), ValueError, "n_probes"),
    (lambda: sampling.bits_per_dim(SCORE, torch.zeros(2, 2), VP, n_levels=1), ValueError, "n_levels"),
    (lambda: sampling.bits_per_dim(SCORE, torch.full((2, 2), 1.5), VP, n_levels=3), ValueError, "outside"),
    (lambda: sampling.bits_per_dim(SCORE, torch.full((2, 2), 0.3), VP, n_levels=3), ValueError, "grid"),
    (lambda: sampling.bits_per_dim(SCORE, torch.zeros(2, 2), VP, n_levels=3, data_range=(1, 0)), ValueError,
     "data_range"),
])
def test_bad_input(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()
