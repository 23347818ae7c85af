"""Unit tests of lab.gaussians, lab.dimension_free and lab.paper_1d (the runners behind chapters 03 and 05)."""

import numpy as np
import pytest
import torch

import scorefusion as sf
from lab import dimension_free as ex
from lab import gaussians
from lab import paper_1d as paper_1d_lab
from scorefusion.data import paper_1d
from scorefusion.distributions import sample_gaussian
from scorefusion.fusion import vanilla_kl_fusion
from scorefusion.metrics import gaussian_tv


def test_gaussian_tv_matches_tv_distance():
    gen = torch.Generator().manual_seed(0)
    for dim in (1, 2, 5):
        p, q = gaussians.random_gaussians(2, dim, gen, mean_scale=0.5)
        tv, se = gaussian_tv(p, q, 100_000, gen)
        ref, ref_se = sf.tv_distance(p, q, n_samples=40_000, generator=gen, return_stderr=True)
        assert abs(tv - ref) < 5 * np.hypot(se, ref_se) + 1e-3


def test_gaussian_tv_of_identical_gaussians_is_zero():
    p = gaussians.random_gaussians(1, 4, torch.Generator().manual_seed(1))[0]
    tv, se = gaussian_tv(p, p, 1000, torch.Generator().manual_seed(2))
    assert tv < 1e-12 and se < 1e-12


def test_sample_gaussian_moments():
    gen = torch.Generator().manual_seed(3)
    p = gaussians.random_gaussians(1, 3, gen)[0]
    x = sample_gaussian(p, 100_000, gen)
    assert torch.allclose(x.mean(0), p.mean, atol=0.02)
    assert torch.allclose(torch.cov(x.T), p.cov, atol=0.03)


def test_random_spd_spectrum():
    cov = gaussians.random_spd(6, torch.Generator().manual_seed(4))
    evals = torch.linalg.eigvalsh(cov)
    assert evals.min() >= 0.5 - 1e-10 and evals.max() <= 2.0 + 1e-10


def test_gaussian_baseline_branches():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(10, 20, generator=gen, dtype=torch.float64)
    shrunk = gaussians.gaussian_baseline(x)  # n <= d: Ledoit-Wolf keeps the covariance positive definite
    assert torch.linalg.eigvalsh(shrunk.cov).min() > 0
    x = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    mle = gaussians.gaussian_baseline(x)
    centred = x - x.mean(0)
    assert torch.allclose(mle.cov, centred.T @ centred / 500, atol=1e-12)


def test_dimension_free_tv_records_and_summary():
    recs = ex.dimension_free_tv([2, 4], [32], 2, n_mc=2000)
    assert len(recs) == 2 * 2 * 2
    summary = ex.summarize_tv(recs, "scorefusion")
    assert set(summary) == {(2, 32), (4, 32)}
    assert all(0 <= m <= 1 for m, _ in summary.values())
    with pytest.raises(ValueError):
        ex.summarize_tv(recs, "nope")


def test_loglog_slope():
    ns = [10, 100, 1000]
    assert ex.loglog_slope(ns, [n**-0.5 for n in ns]) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        ex.loglog_slope([1], [1])


def test_vanilla_kl_fusion_recovers_lam_in_family():
    preset = paper_1d()
    x = sf.GeometricMixture(preset.aux, [0.6, 0.4]).sample(3000, generator=torch.Generator().manual_seed(6))
    lam, nll = vanilla_kl_fusion(preset.aux, x, n_grid=4001)
    assert abs(float(lam[0]) - 0.6) < 0.05 and np.isfinite(nll)


def test_dsm_linear_term_spread_matches_leading_term():
    preset, sde = paper_1d(), sf.VESDE(25.0)
    aux = [sf.AnalyticScore(d, sde) for d in preset.aux]
    x = preset.target.sample(1000, generator=torch.Generator().manual_seed(7))
    stds, _, spread, leading = paper_1d_lab.dsm_linear_term_spread(aux, x, sde, [1e-6, 1e-5], torch.Generator().manual_seed(8))
    assert stds[0] < stds[1]
    assert np.allclose(spread, leading, rtol=0.02)


def test_bad_inputs():
    p = gaussians.random_gaussians(1, 2, torch.Generator().manual_seed(9))[0]
    q = gaussians.random_gaussians(1, 3, torch.Generator().manual_seed(9))[0]
    with pytest.raises(ValueError, match="same dimension"):
        gaussian_tv(p, q)
    with pytest.raises(TypeError, match="Gaussian"):
        gaussian_tv(p, "q")
    with pytest.raises(ValueError, match="at least 2"):
        gaussians.gaussian_baseline(torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="simplex"):
        ex.dimension_free_tv([2], [8], 1, lam_star=(0.5, 0.6))
