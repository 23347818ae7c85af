"""Unit tests of lab.gaussians, lab.dimension_free and lab.paper_1d (the runners behind chapters 03 and 05).

(gaussian_tv and sample_gaussian are library functions: tests/test_core.py tests them.)
"""

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

import scorefusion as sf
from lab import dimension_free as ex
from lab import gaussians
from lab import paper_1d as paper_1d_lab
from scorefusion.data import paper_1d
from scorefusion.fusion import vanilla_kl_fusion


def test_random_spd_spectrum():
    cov = gaussians.random_spd(6, torch.Generator().manual_seed(4))
    evals = torch.linalg.eigvalsh(cov)
    assert evals.min() >= 0.5 - 1e-10 and evals.max() <= 2.0 + 1e-10


def test_gaussian_baseline_is_ledoit_wolf_at_every_n():
    gen = torch.Generator().manual_seed(5)
    for n, d in ((10, 20), (21, 20), (500, 3)):  # below, just above and far above n = d: one estimator
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        fit = gaussians.gaussian_baseline(x)
        ref = LedoitWolf().fit(x.numpy())
        assert torch.allclose(fit.mean, x.mean(0), atol=1e-12)
        assert torch.allclose(fit.cov, torch.as_tensor(ref.covariance_), atol=1e-12)
        assert torch.linalg.eigvalsh(fit.cov).min() > 0
    # with many samples of an anisotropic Gaussian the shrinkage vanishes: the maximum-likelihood covariance
    x = torch.randn(4000, 3, generator=gen, dtype=torch.float64) * torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    centred = x - x.mean(0)
    mle = centred.T @ centred / 4000
    assert (gaussians.gaussian_baseline(x).cov - mle).abs().max() < 0.01 * (mle - mle.trace() / 3).abs().max()


def test_dimension_free_tv_records_and_summary():
    recs = ex.dimension_free_tv([2, 4], [32], 2, n_mc=2000)
    assert len(recs) == 2 * 2 * 2
    summary = ex.summarize_tv(recs, "scorefusion")
    assert set(summary) == {(2, 32), (4, 32)}
    assert all(0 <= m <= 1 for m, _ in summary.values())
    with pytest.raises(ValueError):
        ex.summarize_tv(recs, "nope")


def test_dimension_free_tv_methods_are_independent():
    both = ex.dimension_free_tv([3], [16], 2, n_mc=500)
    alone = ex.dimension_free_tv([3], [16], 2, n_mc=500, methods=("gaussian",))
    assert [r for r in both if r.method == "gaussian"] == alone
    assert ex.dimension_free_tv([3], [16], 2, n_mc=500, methods=("scorefusion",)) == \
        [r for r in both if r.method == "scorefusion"]
    with pytest.raises(ValueError, match="methods"):
        ex.dimension_free_tv([3], [16], 1, methods=("mle",))


def test_dimension_slope_recovers_a_planted_power_law():
    recs = [ex.TVRecord(d, n, s, "m", 0.3 * d**0.2 * n**-0.5 * (1 + 0.01 * s), 0.0)
            for d in (2, 8, 32) for n in (16, 256) for s in range(3)]
    slope, se = ex.dimension_slope(recs, "m")
    assert slope == pytest.approx(0.2, abs=1e-9) and se < 0.01
    with pytest.raises(ValueError, match="two dimensions"):
        ex.dimension_slope([r for r in recs if r.dim == 2], "m")


def test_scaled_kl_is_2n_kl_of_each_fit():
    lam_star, other = (0.5, 0.3, 0.2), (0.4, 0.4, 0.2)
    recs = [ex.TVRecord(4, 32, 0, "scorefusion", 0.1, 0.0, lam_star), ex.TVRecord(4, 32, 1, "scorefusion", 0.1, 0.0, other),
            ex.TVRecord(4, 32, 0, "gaussian", 0.5, 0.0)]
    aux, target = ex.dimension_free_setup(4, lam_star)
    expected = 2 * 32 * float(sf.kl_gaussian(target, sf.kl_barycenter(aux, torch.tensor(other, dtype=torch.float64))))
    mean, se = ex.scaled_kl(recs, lam_star)[(4, 32)]
    assert mean == pytest.approx(expected / 2, rel=1e-9) and se == pytest.approx(expected / 2, rel=1e-9)
    with pytest.raises(ValueError, match="scorefusion"):
        ex.scaled_kl(recs[2:])


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


def test_bad_inputs():  # gaussian_tv's are in tests/test_bad_inputs.py
    with pytest.raises(ValueError, match="at least 2"):
        gaussians.gaussian_baseline(torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="simplex"):
        ex.dimension_free_tv([2], [8], 1, lam_star=(0.5, 0.6))
