"""The simplex solver at large K, the all-time fits, weight schedules and the bound's data term."""

import time

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import scorefusion.fusion as fusion
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
    with pytest.raises(ValueError, match="G must"):
        minimize_quadratic_on_simplex(np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        minimize_quadratic_on_simplex(np.full((10, 10), np.inf), np.zeros(10))
