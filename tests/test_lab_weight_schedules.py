"""lab.weight_schedules: the sampler outputs, bounds and tables behind chapter 04's four fits."""

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import scorefusion as sf
from lab import gaussian_flows as gf
from lab import weight_schedules as ws

VP = sf.VPSDE()
PAIR, TARGET = ws.gaussian_cases()["1-D pair, target p_lam*"]


def test_piecewise_gaussian_output_matches_one_solve():
    """A schedule with the same weights in every bin gives the one-solve output of gaussian_flows; a schedule
    equal to the one-solve output's weights on each piece chains the pieces exactly."""
    lam = torch.tensor([0.3, 0.7], dtype=torch.float64)
    same = ws.as_schedule(lam, np.geomspace(1e-3, 1.0, 9))
    for kind in ("sde", "ode"):
        one = gf.gaussian_output(VP, lambda t: gf.fused_affine(VP, PAIR, lam.numpy(), t), ws.prior(VP, 1), kind)
        pieces = ws.gaussian_output(VP, PAIR, same, kind)
        assert abs(float(pieces.mean[0] - one.mean[0])) < 1e-7 and abs(float(pieces.cov[0, 0] / one.cov[0, 0]) - 1) < 1e-7


def test_gaussian_bound_matches_quadrature_and_bounds_the_kl():
    """The closed-form data term by Gauss-Legendre panels equals scipy's quad to 1e-7 (relative), and the whole
    bound is above the exact KL of the reverse SDE (Song et al. 2021, Thm. 1), for constant weights and a schedule."""
    schedule = sf.WeightSchedule(np.geomspace(1e-3, 1.0, 5), [[0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.75, 0.25]])
    for lam in (torch.tensor([0.5, 0.5], dtype=torch.float64), schedule):
        def density(t, lam=lam):
            w = (lam(t) if isinstance(lam, sf.WeightSchedule) else lam).numpy()
            (A, c), (As, cs) = gf.fused_affine(VP, PAIR, w, t), gf.fused_affine(VP, [TARGET], [1.0], t)
            p_t, D = TARGET.noised(VP, t), A - As
            return 0.5 * gf.drift_coefficients(VP, t)[1] * (np.trace(D @ p_t.cov.numpy() @ D.T)
                                                          + np.sum((D @ p_t.mean.numpy() - (c - cs)) ** 2))

        points = lam.edges[1:-1].numpy() if isinstance(lam, sf.WeightSchedule) else None
        exact = ws.prior_term(TARGET, VP) + quad(density, ws.EPS, 1.0, points=points, limit=400)[0]
        value = ws.gaussian_bound(VP, PAIR, lam, TARGET)
        assert abs(value / exact - 1) < 1e-7, (value, exact)
        kl = float(sf.kl_gaussian(TARGET.noised(VP, ws.EPS), ws.gaussian_output(VP, PAIR, lam, "sde")))
        assert kl <= value


def test_prior_term_of_a_mixture_by_quadrature():
    """A one-component mixture gives the Gaussian's closed form; VE's prior is N(0, std_T^2)."""
    mixture = sf.GaussianMixture([1.0], [[0.7]], [[[2.0]]])
    for sde in (VP, sf.VESDE(25.0)):
        closed = ws.prior_term(sf.Gaussian([0.7], [[2.0]]), sde)
        assert abs(ws.prior_term(mixture, sde) - closed) < 1e-8 * max(1.0, closed) + 1e-12
    assert float(ws.prior(sf.VESDE(25.0), 2).cov[0, 0]) == pytest.approx(float(sf.VESDE(25.0).marginal(1.0)[1]) ** 2)


def test_bound_with_common_edges_orders_the_fits_on_the_same_draws():
    """Constant weights passed on the schedule's edges are integrated on the same nodes and draws, so two
    weights that differ little are ordered as the exact bound orders them."""
    aux = [sf.AnalyticScore(d, VP) for d in PAIR]
    edges = np.geomspace(1e-3, 1.0, 9)
    near = [torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.52, 0.48], dtype=torch.float64)]
    mc = [ws.bound(aux, lam, TARGET, VP, 4000, seed=3, n_nodes=16, edges=edges) for lam in near]
    exact = [ws.gaussian_bound(VP, PAIR, lam, TARGET) for lam in near]
    assert (mc[0] < mc[1]) == (exact[0] < exact[1]) and abs(mc[0] / exact[0] - 1) < 0.05


def test_tables_have_every_fit_and_the_oracle():
    rows = ws.gaussian_rows(VP, n_fit=256, cases={"pair": (PAIR, TARGET)})
    assert [r.fit for r in rows] == list(ws.FITS) and isinstance(rows[3].lam, sf.WeightSchedule)
    assert all(r.kl_sde <= r.bound * (1 + 1e-6) and r.bound_mc is None and r.kl_ode is None for r in rows)
    preset = ws.preset_rows(VP, "standardized", n_fit=256, n_bound=256, n_samples=300, n_steps=20, n_nodes=8)
    assert [r.fit for r in preset] == [*ws.FITS, "oracle"] and preset[-1].lam is None
    assert all(0.0 <= r.left <= 1.0 and r.w1 > 0 and 0.0 <= r.tv <= 1.0 for r in preset)
    assert "lam_1(t)" in ws.describe(preset[3].lam) and ws.describe(preset[0].lam).startswith("lam = (")
    again = ws.preset_rows(sf.VPSDE(), "standardized", n_fit=256, n_bound=256, n_samples=300, n_steps=20, n_nodes=8)
    assert again is preset  # memoised: chapter 04's claims table reuses its section's runs
    with pytest.raises(ValueError, match="geometry"):
        ws.preset_rows(VP, "log", n_fit=8, n_bound=8, n_samples=8, n_steps=2)


def test_bound_is_the_prior_term_plus_the_data_term_in_either_precision():
    aux = [sf.AnalyticScore(d, VP) for d in PAIR]
    lam = torch.tensor([0.4, 0.6], dtype=torch.float64)
    data = ws.data_term(aux, lam, TARGET, VP, 2000, seed=5, n_nodes=16)
    assert ws.bound(aux, lam, TARGET, VP, 2000, seed=5, n_nodes=16) == pytest.approx(ws.prior_term(TARGET, VP) + data)
    single = ws.data_term(aux, lam, TARGET, VP, 2000, seed=5, n_nodes=16, dtype=torch.float32)
    # float32 samples, as score networks take: torch draws float32 noise from another stream, so the two agree
    # within the Monte-Carlo error of 2000 samples, not to rounding
    assert single == pytest.approx(data, rel=0.03) and data > 0
