"""The simplex solver at large K, the all-time fits, weight schedules and the bound's data term."""

import math
import re
import time

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.stats import norm
from toy_nets import TinyScore

import scorefusion as sf
from lab import gaussian_flows as gf
from scorefusion import fusion, sampling
from scorefusion.data import paper_1d
from scorefusion.fusion import minimize_quadratic_on_simplex


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_problem(rng, k, rank=None):
    a = rng.normal(size=(rank or 2 * k, k)) * rng.exponential(size=k)
    return a.T @ a, rng.normal(size=k) * rng.choice([0.1, 1.0, 5.0, 20.0])


def slsqp(G, b):
    k = b.shape[0]
    res = minimize(lambda v: v @ G @ v - 2 * b @ v, np.full(k, 1.0 / k), jac=lambda v: 2 * (G @ v - b),
                   method="SLSQP", bounds=[(0.0, 1.0)] * k,
                   constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1.0, "jac": lambda v: np.ones(k)}],
                   options={"ftol": 1e-14, "maxiter": 2000})
    # status 8 ("positive directional derivative in the line search"): no further descent at float precision
    assert res.status in (0, 8) and abs(res.x.sum() - 1) < 1e-8 and (res.x >= -1e-10).all(), res.message
    return res.x


# -- the simplex solver -----------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 5, 8, 9, 12, 16, 24, 32, 48, 64])
def test_simplex_solver_matches_slsqp(k):
    """Random positive-definite problems: SLSQP's minimiser within 1e-6 (measured: within 2.2e-7 up to K = 64)
    and, on badly scaled ones, where SLSQP itself misses by up to 4e-6, never a worse objective."""
    rng = np.random.default_rng(k)
    for _ in range(5):
        a = rng.normal(size=(2 * k, k))
        G, b = a.T @ a, rng.normal(size=k) * 5
        lam, residual = minimize_quadratic_on_simplex(G, b)
        assert residual <= 1e-9 and (lam >= 0).all() and abs(lam.sum() - 1) < 1e-12
        assert np.abs(lam - slsqp(G, b)).max() < 1e-6
        G, b = random_problem(rng, k)  # columns scaled by exponential draws: condition numbers up to ~1e6
        lam, residual = minimize_quadratic_on_simplex(G, b)
        ref = np.clip(slsqp(G, b), 0.0, None)  # SLSQP's point is feasible only to ~1e-9: put it on the simplex
        ref /= ref.sum()
        ref_value = ref @ G @ ref - 2 * b @ ref
        assert residual <= 1e-9 and lam @ G @ lam - 2 * b @ lam <= ref_value + 1e-12 * (1 + abs(ref_value))


def test_active_set_gives_the_enumerations_numbers(monkeypatch):
    """On problems with one minimiser, K = 2..8, the active-set method returns the enumeration's weights bit for bit."""
    rng = np.random.default_rng(1)
    problems = [random_problem(rng, int(rng.integers(2, 9))) for _ in range(300)]
    enumerated = [minimize_quadratic_on_simplex(G, b) for G, b in problems]
    monkeypatch.setattr(fusion, "ENUMERATION_MAX_MODELS", 0)
    for (G, b), (lam, residual) in zip(problems, enumerated):
        lam_active, residual_active = minimize_quadratic_on_simplex(G, b)
        assert np.array_equal(lam_active, lam) and residual_active == residual


def test_active_set_on_singular_problems():
    """Rank-deficient G (fewer data than models), where faces are unbounded: still a certified KKT point."""
    rng = np.random.default_rng(2)
    for k in (10, 20, 40):
        for rank in (1, 3, k // 2):
            G, b = random_problem(rng, k, rank=rank)
            lam, residual = minimize_quadratic_on_simplex(G, b)
            trials = rng.dirichlet(np.ones(k), size=2000)
            values = np.einsum("ni,ij,nj->n", trials, G, trials) - 2 * trials @ b
            assert residual <= 1e-9 and lam @ G @ lam - 2 * b @ lam <= values.min() + 1e-9
    same = np.ones((12, 12))  # twelve identical models: every weight vector is optimal
    lam, residual = minimize_quadratic_on_simplex(same, np.ones(12))
    assert residual <= 1e-9 and abs(lam.sum() - 1) < 1e-12


def test_simplex_solver_returns_the_vertex_the_linear_term_points_to():
    lam, residual = minimize_quadratic_on_simplex(np.eye(2), np.array([10.0, -10.0]))
    assert np.allclose(lam, [1.0, 0.0]) and residual <= 1e-9


def test_simplex_solver_is_fast_at_k_64():
    """K = 64 in under 10 ms of CPU time (best of 5 runs of each of 5 problems; CPU time, as the machine is shared)."""
    rng = np.random.default_rng(3)
    times = []
    for _ in range(5):
        G, b = random_problem(rng, 64)
        best = np.inf
        for _ in range(5):
            start = time.process_time()
            minimize_quadratic_on_simplex(G, b)
            best = min(best, time.process_time() - start)
        times.append(best)
    assert np.median(times) < 0.010, times


def test_simplex_solver_refuses_bad_inputs():
    with pytest.raises(ValueError, match="b must"):
        minimize_quadratic_on_simplex(np.zeros((0, 0)), np.zeros(0))
    with pytest.raises(ValueError, match="b must have one entry per row of G"):
        minimize_quadratic_on_simplex(np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="G must be a square"):
        minimize_quadratic_on_simplex(np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        minimize_quadratic_on_simplex(np.full((10, 10), np.inf), np.zeros(10))


# -- the all-time fits -------------------------------------------------------------

VP = sf.VPSDE()
PAIR = [sf.Gaussian([-1.0], [[1.0]]), sf.Gaussian([2.0], [[4.0]])]
PAIR_TARGET = sf.kl_barycenter(PAIR, [0.5, 0.5])
PAIR_AUX = [sf.AnalyticScore(d, VP) for d in PAIR]


def exact_all_time_weights(weighting, t_range=(1e-3, 1.0)):
    """The all-time minimiser for the Gaussian pair, the t-integral by scipy's quad of the closed-form
    G(t)_ij = tr(A_i S_t A_j) + r_i.r_j, b(t)_i = tr A_i (affine scores s_i = -A_i x + c_i, target N(m_t, S_t))."""
    def per_time(t):
        pt = PAIR_TARGET.noised(VP, t)
        mu, cov = pt.mean.numpy(), pt.cov.numpy()
        parts = [gf.fused_affine(VP, [d], [1.0], t) for d in PAIR]
        rs = [c - A @ mu for A, c in parts]
        G = np.array([[np.trace(Ai @ cov @ Aj) + ri @ rj for (Aj, _), rj in zip(parts, rs)]
                      for (Ai, _), ri in zip(parts, rs)])
        w = float(fusion.time_weighting(VP, weighting, torch.tensor([t], dtype=torch.float64))[0])
        return w * G, w * np.array([np.trace(A) for A, _ in parts])

    G = np.array([[quad(lambda t, i=i, j=j: per_time(t)[0][i, j], *t_range, limit=200)[0] for j in range(2)]
                  for i in range(2)])
    b = np.array([quad(lambda t, i=i: per_time(t)[1][i], *t_range, limit=200)[0] for i in range(2)])
    return minimize_quadratic_on_simplex(G, b)[0]


def test_default_fits_keep_their_numbers():
    """The one-time ISM and the paper's DSM give the numbers they gave before the all-time fits (pinned)."""
    preset = paper_1d()
    aux = [sf.AnalyticScore(d, sf.VESDE()) for d in preset.aux]
    x0 = preset.target.sample(512, generator=gen(3))
    ism = sf.fit_weights(aux, x0, sf.VESDE(), generator=gen(4))
    dsm = sf.fit_weights(aux, x0, sf.VESDE(), method="dsm", generator=gen(4))
    assert ism.lam[0].item() == 0.12067319172381175 and ism.loss == 2.394645412875412 and ism.weighting is None
    assert dsm.lam[0].item() == 0.0 and dsm.loss == 1.0361437952421546


@pytest.mark.parametrize(("method", "weighting", "tol"), [("ism", "likelihood", 0.015), ("dsm", "likelihood", 0.015),
                                                         ("ism", "std2", 0.015), ("dsm", "std2", 0.015)])
def test_all_time_fit_finds_the_exact_minimiser(method, weighting, tol):
    """n = 16384 target samples: the exact all-time minimiser (0.660 likelihood, 0.670 std2; the one-time ISM
    gives 0.5) within tol (measured errors below 0.006)."""
    x0 = PAIR_TARGET.sample(16384, generator=gen(5))
    fit = sf.fit_weights(PAIR_AUX, x0, VP, method=method, weighting=weighting, generator=gen(6))
    exact = exact_all_time_weights(weighting)
    assert abs(fit.lam[0].item() - exact[0]) < tol, (fit.lam, exact)
    assert fit.weighting == weighting and fit.kkt_residual <= 1e-9 and fit.method == method
    assert abs(sf.fit_weights(PAIR_AUX, x0, VP).lam[0].item() - 0.5) < 0.02


def test_ism_and_dsm_all_time_quadratics_estimate_the_same_integral():
    """G and b of the all-time ISM and DSM both estimate int w(t) E[s_i s_j] dt and -int w(t) E[div s_i] dt
    (Stein's identity), so on large n they agree to a few percent; a callable weighting equal to g^2 gives the
    "likelihood" numbers (to rounding)."""
    x0 = PAIR_TARGET.sample(16384, generator=gen(7))
    ism = sf.fit_weights(PAIR_AUX, x0, VP, weighting="likelihood", generator=gen(8))
    dsm = sf.fit_weights(PAIR_AUX, x0, VP, method="dsm", weighting="likelihood", generator=gen(8))
    (G_i, b_i, c_i), (G_d, b_d, _) = ism.quadratic, dsm.quadratic
    assert torch.allclose(G_i, G_d, rtol=0.05) and torch.allclose(b_i, b_d, rtol=0.05), (G_i, G_d, b_i, b_d)
    assert float(c_i) == 0.0

    def g2(t):
        return VP.beta(t).double()

    same = sf.fit_weights(PAIR_AUX, x0, VP, weighting=g2, generator=gen(8))
    assert torch.allclose(same.lam, ism.lam, rtol=0, atol=1e-12)  # beta against sqrt(beta)^2


def test_importance_times_are_stratified_and_exactly_weighted():
    """std2: w/std^2 = 1, so q is uniform and every importance weight is t1 - t0; likelihood: the weights
    average to int g^2/std^2 dt; one draw per stratum of q's CDF."""
    t, weight = fusion._importance_times(VP, "std2", 0.01, 0.5, 1000, gen(9))
    assert torch.allclose(weight, torch.full_like(weight, 0.49), rtol=1e-9)
    assert torch.equal(torch.sort((t - 0.01) / 0.49 * 1000).values.floor(), torch.arange(1000, dtype=torch.float64))
    t, weight = fusion._importance_times(VP, "likelihood", 1e-3, 1.0, 4000, gen(10))
    exact = quad(lambda s: float(VP.beta(torch.tensor(s))) / float(VP.marginal(torch.tensor(s))[1]) ** 2, 1e-3, 1.0,
                 limit=200)[0]
    assert abs(float(weight.mean()) / exact - 1) < 1e-3 and t.min() >= 1e-3 and t.max() <= 1.0


# -- weight schedules ---------------------------------------------------------------

def test_schedule_with_one_bin_is_the_all_time_fit():
    x0 = PAIR_TARGET.sample(2048, generator=gen(11))
    one = sf.fit_weight_schedule(PAIR_AUX, x0, VP, bins=1, n_nodes=16, generator=gen(12))
    fit = sf.fit_weights(PAIR_AUX, x0, VP, weighting="likelihood", n_nodes=16, generator=gen(12))
    assert torch.equal(one.lam[0], fit.lam) and one.losses[0].item() == fit.loss


def test_schedule_bins_edges_residuals_and_the_bound_ordering():
    """Eight bins equal in log t over (1e-3, 1]; lam(t) moves from the barycenter's 0.5 at small t towards the
    target's large-t weights; the bound (exact, target score known) of the schedule is below the all-time fit's,
    below the one-time ISM's, and each within 1% of the closed-form quadrature of chapter 04."""
    x0 = PAIR_TARGET.sample(8192, generator=gen(13))
    schedule = sf.fit_weight_schedule(PAIR_AUX, x0, VP, generator=gen(14))
    assert schedule.n_bins == 8 and schedule.n_models == 2 and (schedule.kkt_residuals <= 1e-9).all()
    assert torch.allclose(schedule.edges, torch.from_numpy(np.geomspace(1e-3, 1.0, 9)), rtol=1e-12)
    assert abs(schedule.lam[0, 0].item() - 0.5) < 0.02 and schedule.lam[-1, 0].item() > 0.7
    assert torch.equal(schedule(torch.tensor([1e-4, 1e-3, 0.5, 1.0])), schedule.lam[[0, 0, 7, 7]])
    constant = sf.fit_weights(PAIR_AUX, x0, VP, weighting="likelihood", generator=gen(15)).lam
    small_t = sf.fit_weights(PAIR_AUX, x0, VP).lam
    fresh = PAIR_TARGET.sample(20000, generator=gen(16))
    star = sf.AnalyticScore(PAIR_TARGET, VP)
    bounds = [sf.bound_data_term(PAIR_AUX, lam, fresh, VP, target_score=star, generator=gen(17))
              for lam in (schedule, constant, small_t)]
    assert bounds[0] < bounds[1] < bounds[2], bounds
    for lam, value in zip((schedule, constant, small_t), bounds):
        assert abs(value / exact_bound(lam) - 1) < 0.01, (value, exact_bound(lam))


def exact_bound(lam):
    """1/2 int g^2 E|s_lam - grad log p_t|^2 dt for the Gaussian pair, by quad (chapter 04's score_gap_density)."""
    def density(t):
        w = lam(float(t)).numpy() if isinstance(lam, sf.WeightSchedule) else lam.numpy()
        (Af, cf), (At, ct) = gf.fused_affine(VP, PAIR, w, t), gf.fused_affine(VP, [PAIR_TARGET], [1.0], t)
        pt = PAIR_TARGET.noised(VP, t)
        D, delta = Af - At, cf - ct
        return 0.5 * float(VP.beta(torch.tensor(t))) * (np.trace(D @ pt.cov.numpy() @ D.T)
                                                       + np.sum((D @ pt.mean.numpy() - delta) ** 2))

    points = lam.edges[1:-1].numpy() if isinstance(lam, sf.WeightSchedule) else None
    return quad(density, 1e-3, 1.0, points=points, limit=400)[0]


def test_bound_without_the_target_score_differs_by_a_lam_free_constant():
    """Hyvarinen's form drops 1/2 int g^2 E|grad log p_t|^2 and is noisier than the exact form (no control by the
    target score: on 20000 random samples its differences between weights were off by 14% on average).
    On target quantiles (no sampling error in x_0), the mean over 4 noise seeds of its difference between two
    weights matches the closed-form difference within 6% (measured 2.5%); its level is below zero."""
    m, v = PAIR_TARGET.mean.item(), PAIR_TARGET.cov.item()
    quantiles = torch.from_numpy(m + math.sqrt(v) * norm.ppf((np.arange(20000) + 0.5) / 20000))[:, None]
    lams = [torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.7, 0.3], dtype=torch.float64)]
    diffs = []
    for seed in range(4):
        ism = [sf.bound_data_term(PAIR_AUX, lam, quantiles, VP, n_nodes=16, generator=gen(100 + seed)) for lam in lams]
        diffs.append(ism[0] - ism[1])
    exact = exact_bound(lams[0]) - exact_bound(lams[1])
    assert abs(np.mean(diffs) / exact - 1) < 0.06, (diffs, exact)
    assert ism[0] < 0 < exact_bound(lams[0])


def test_fused_score_with_a_schedule_matches_the_constant_weights_of_each_bin():
    schedule = sf.WeightSchedule([1e-3, 0.1, 1.0], [[0.2, 0.8], [0.7, 0.3]])
    fused = sf.FusedScore(PAIR_AUX, schedule)
    x = torch.randn(6, 1, generator=gen(20), dtype=torch.float64)
    t = torch.tensor([1e-4, 0.01, 0.1, 0.1001, 0.5, 1.0], dtype=torch.float64)
    expected = torch.cat([sf.FusedScore(PAIR_AUX, schedule(float(ti)))(x[i:i + 1], ti) for i, ti in enumerate(t)])
    assert torch.allclose(fused(x, t), expected, atol=1e-15)
    assert torch.allclose(fused(x, 0.5), sf.FusedScore(PAIR_AUX, [0.7, 0.3])(x, 0.5), atol=1e-15)
    assert fused.lam is None and fused.schedule is schedule
    callable_lam = sf.FusedScore(PAIR_AUX, lambda tt: torch.stack([tt, 1 - tt], 1))
    assert torch.allclose(callable_lam(x, t), sum(w * s(x, t) for w, s in zip((t[:, None], 1 - t[:, None]), PAIR_AUX)))


def test_schedule_on_the_vmap_path_and_through_a_sampler():
    torch.manual_seed(0)
    nets = [TinyScore() for _ in range(3)]
    schedule = sf.WeightSchedule([1e-3, 0.05, 0.3, 1.0], [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]])
    stacked = sf.FusedScore(nets, schedule, vectorize=True)
    looped = sf.FusedScore(nets, schedule, vectorize=False)
    assert stacked.vectorized_on("cpu") and not looped.vectorized_on("cpu")
    x, t = torch.randn(9, 2), torch.tensor([0.01, 0.04, 0.05, 0.06, 0.2, 0.3, 0.31, 0.9, 1.0])
    with torch.no_grad():
        w = schedule(t).float()
        manual = sum(w[:, i, None] * net(x, t) for i, net in enumerate(nets))
        assert torch.allclose(stacked(x, t), manual, atol=1e-6) and torch.allclose(looped(x, t), manual, atol=1e-6)
    same = sf.WeightSchedule([1e-3, 0.1, 1.0], [[0.3, 0.7], [0.3, 0.7]])
    runs = [sampling.euler_maruyama(sf.FusedScore(PAIR_AUX, lam), VP, (64, 1), n_steps=20, generator=gen(21),
                                    dtype=torch.float64) for lam in (same, torch.tensor([0.3, 0.7]))]
    assert torch.allclose(runs[0], runs[1], atol=1e-12)


# -- bad inputs ---------------------------------------------------------------------

X_BAD = PAIR_TARGET.sample(8, generator=gen(22))
BAD = [
    ("bins beyond T", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[1e-3, 0.5, 2.0]), ValueError, "bins"),
    ("bins from zero", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[0.0, 0.5, 1.0]), ValueError, "bins"),
    ("bins negative", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[-0.1, 0.5]), ValueError, "bins"),
    ("empty bin", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[1e-3, 0.1, 0.1, 1.0]), ValueError, "bins"),
    ("bins decreasing", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[1e-3, 0.5, 0.1]), ValueError,
     "bins"),
    ("one edge", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[0.5]), ValueError, "bins"),
    ("zero bins", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=0), ValueError, "bins"),
    ("bins a bool", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=True), TypeError, "bins"),
    ("bins a string", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins="eight"), TypeError, "bins"),
    ("edges and t_range", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, bins=[1e-3, 1.0], t_range=(1e-3, 1.0)),
     ValueError, "t_range"),
    ("schedule method sgd", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, method="sgd"), ValueError, "method"),
    ("schedule n_nodes zero", lambda: sf.fit_weight_schedule(PAIR_AUX, X_BAD, VP, n_nodes=0), ValueError, "n_nodes"),
    ("schedule row off the simplex", lambda: sf.WeightSchedule([1e-3, 0.1, 1.0], [[0.5, 0.5], [0.6, 0.6]]),
     ValueError, "lam"),
    ("schedule row negative", lambda: sf.WeightSchedule([1e-3, 1.0], [[1.5, -0.5]]), ValueError, "lam"),
    ("schedule rows and bins disagree", lambda: sf.WeightSchedule([1e-3, 0.1, 1.0], [[0.5, 0.5]]), ValueError, "lam"),
    ("schedule empty bin", lambda: sf.WeightSchedule([1e-3, 1e-3, 1.0], [[0.5, 0.5], [0.5, 0.5]]), ValueError,
     "edges"),
    ("schedule edge at zero", lambda: sf.WeightSchedule([0.0, 1.0], [[0.5, 0.5]]), ValueError, "edges"),
    ("schedule NaN edge", lambda: sf.WeightSchedule([math.nan, 1.0], [[0.5, 0.5]]), ValueError, "edges"),
    ("schedule residuals shape", lambda: sf.WeightSchedule([1e-3, 1.0], [[0.5, 0.5]], kkt_residuals=[0.0, 0.0]),
     ValueError, "kkt_residuals"),
    ("schedule time beyond its last edge", lambda: sf.WeightSchedule([1e-3, 0.5], [[0.5, 0.5]])(0.7), ValueError, "t"),
    ("schedule time zero", lambda: sf.WeightSchedule([1e-3, 0.5], [[0.5, 0.5]])(0.0), ValueError, "t"),
    ("fused schedule of other K", lambda: sf.FusedScore(PAIR_AUX, sf.WeightSchedule([1e-3, 1.0], [[0.2, 0.3, 0.5]])),
     ValueError, "lam"),
    ("fused callable off the simplex", lambda: sf.FusedScore(PAIR_AUX, lambda t: torch.ones(t.shape[0], 2))(X_BAD, 0.5),
     ValueError, "lam"),
    ("fused callable wrong shape", lambda: sf.FusedScore(PAIR_AUX, lambda t: torch.ones(2) / 2)(X_BAD, 0.5),
     ValueError, "lam"),
    ("weighting unknown", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting="snr"), ValueError, "weighting"),
    ("weighting a number", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting=2.0), TypeError, "weighting"),
    ("weighting negative", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting=lambda t: -t), ValueError,
     "weighting"),
    ("weighting wrong shape", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting=lambda t: t[:1]), ValueError,
     "weighting"),
    ("weighting zero everywhere", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, method="dsm", weighting=lambda t: 0 * t),
     ValueError, "weighting"),
    ("weighting with sgd", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, method="sgd", weighting="likelihood"),
     ValueError, "weighting"),
    ("weighting with t", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting="likelihood", t=0.1), ValueError, "t"),
    ("all-time t_range beyond T", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting="likelihood",
                                                         t_range=(1e-3, 2.0)), ValueError, "t_range"),
    ("all-time t_range reversed", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting="std2", t_range=(0.5, 0.1)),
     ValueError, "t_range"),
    ("all-time n_nodes zero", lambda: sf.fit_weights(PAIR_AUX, X_BAD, VP, weighting="likelihood", n_nodes=0),
     ValueError, "n_nodes"),
    ("bound target_score not callable", lambda: sf.bound_data_term(PAIR_AUX, [0.5, 0.5], X_BAD, VP, target_score=3),
     TypeError, "target_score"),
    ("bound lam off the simplex", lambda: sf.bound_data_term(PAIR_AUX, [0.5, 0.6], X_BAD, VP), ValueError, "lam"),
    ("bound t_range from zero", lambda: sf.bound_data_term(PAIR_AUX, [0.5, 0.5], X_BAD, VP, t_range=(0.0, 1.0)),
     ValueError, "t_range"),
]


@pytest.mark.parametrize(("name", "call", "error", "argument"), BAD, ids=[row[0] for row in BAD])
def test_bad_inputs_are_refused_naming_the_argument(name, call, error, argument):
    with pytest.raises(error) as info:
        call()
    assert re.search(rf"\b{argument}\b", str(info.value)), (name, str(info.value))
