"""Bad input raises a clear ValueError/TypeError that names the argument."""

import math
import re

import pytest
import torch

import scorefusion as sf
from scorefusion.data import paper_1d
from scorefusion.fusion import minimize_quadratic_on_simplex
from scorefusion.losses import sample_times
from scorefusion.sde import time_grid

SDE = sf.VESDE()
AUX = [sf.AnalyticScore(d, SDE) for d in paper_1d().aux]
X0 = torch.randn(16, 1, dtype=torch.float64)
G1 = sf.Gaussian([0.0], [[1.0]])
G2 = sf.Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])


def bad_shape_score(x, t):
    return torch.zeros(x.shape[0], 3, dtype=x.dtype)


CASES = [
    ("lam off the simplex", lambda: sf.kl_barycenter([G1, G1], [0.7, 0.7]), ValueError, "lam"),
    ("negative lam", lambda: sf.kl_barycenter([G1, G1], [1.5, -0.5]), ValueError, "lam"),
    ("lam wrong length", lambda: sf.FusedScore(AUX, [1.0]), ValueError, "lam"),
    ("lam with NaN", lambda: sf.FusedScore(AUX, [math.nan, 1.0]), ValueError, "lam"),
    ("lam is a string", lambda: sf.FusedScore(AUX, "uniform"), TypeError, "lam"),
    ("empty aux", lambda: sf.FusedScore([], []), ValueError, "aux"),
    ("aux not callable", lambda: sf.FusedScore([1, 2], [0.5, 0.5]), TypeError, "aux"),
    ("aux output shape differs", lambda: sf.FusedScore([bad_shape_score, AUX[0]], [0.5, 0.5])(X0, 0.5),
     ValueError, "shape"),
    ("dimension mismatch in barycenter", lambda: sf.kl_barycenter([G1, G2], [0.5, 0.5]), ValueError, "dimension"),
    ("not a distribution", lambda: sf.kl_barycenter([G1, "p"], [0.5, 0.5]), TypeError, "dists[1]"),
    ("covariance not SPD", lambda: sf.Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), ValueError, "positive definite"),
    ("covariance not symmetric", lambda: sf.Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]), ValueError, "symmetric"),
    ("covariance wrong shape", lambda: sf.Gaussian([0.0, 0.0], [[1.0]]), ValueError, "cov"),
    ("mean with inf", lambda: sf.Gaussian([math.inf], [[1.0]]), ValueError, "mean"),
    ("mixture weights not summing to 1", lambda: sf.GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]]),
     ValueError, "weights"),
    ("mixture means wrong rank", lambda: sf.GaussianMixture([1.0], [0.0], [[[1.0]]]), ValueError, "means"),
    ("log_prob of wrong dimension", lambda: G2.log_prob(torch.zeros(3, 3, dtype=torch.float64)), ValueError, "x"),
    ("log_prob of NaN", lambda: G1.log_prob(torch.tensor([[math.nan]])), ValueError, "NaN"),
    ("empty points", lambda: G1.score(torch.zeros(0, 1)), ValueError, "empty"),
    ("sample n = 0", lambda: G1.sample(0), ValueError, "n"),
    ("t outside (0, T]", lambda: G1.noised(SDE, 1.5), ValueError, "t"),
    ("t = 0", lambda: AUX[0](X0, 0.0), ValueError, "t"),
    ("t wrong shape", lambda: AUX[0](X0, torch.ones(3)), ValueError, "t"),
    ("NaN in data", lambda: sf.fit_weights(AUX, torch.tensor([[math.nan]], dtype=torch.float64), SDE), ValueError,
     "NaN"),
    ("empty data set", lambda: sf.fit_weights(AUX, torch.zeros(0, 1, dtype=torch.float64), SDE), ValueError, "x0"),
    ("data not a tensor", lambda: sf.fit_weights(AUX, [[0.0]], SDE), TypeError, "x0"),
    ("integer data", lambda: sf.dsm_loss(AUX[0], torch.zeros(4, 1, dtype=torch.long), SDE), TypeError, "x0"),
    ("unknown fit method", lambda: sf.fit_weights(AUX, X0, SDE, method="adam"), ValueError, "method"),
    ("n_probes zero", lambda: sf.ism_quadratic(AUX, X0, SDE, n_probes=0), ValueError, "n_probes"),
    ("bad t_range", lambda: sample_times(4, SDE, (0.5, 0.1)), ValueError, "t_range"),
    ("sigma <= 1", lambda: sf.VESDE(sigma=0.5), ValueError, "sigma"),
    ("beta_min >= beta_max", lambda: sf.VPSDE(beta_min=5.0, beta_max=1.0), ValueError, "beta_min"),
    ("n_steps zero", lambda: time_grid(SDE, 0), ValueError, "n_steps"),
    ("G wrong shape", lambda: minimize_quadratic_on_simplex([[1.0]], [1.0, 2.0]), ValueError, "G"),
    ("kl of a mixture", lambda: sf.kl_gaussian(paper_1d().aux[0], G1), TypeError, "p"),
    ("w1 dimension mismatch", lambda: sf.w1_distance(torch.zeros(3, 1), torch.zeros(3, 2)), ValueError, "x and y"),
    ("tv dimension mismatch", lambda: sf.tv_distance(G1, G2), ValueError, "dimension"),
    ("tv_histogram in 2-D", lambda: sf.tv_histogram(torch.zeros(5, 2), G2), ValueError, "x"),
]


@pytest.mark.parametrize("name, call, error, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(name, call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        call()


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
