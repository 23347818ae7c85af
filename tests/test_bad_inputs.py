"""Bad input raises a clear ValueError/TypeError that names the argument, and never hangs.

One table: each row is (id, call, error type, argument). The test asserts the type and that the
message names the argument as a word (``x`` must not be found inside ``expected``); each row has
its own 20 s timeout, so an input that makes the library loop fails instead of hanging the run.
"""

import math
import re

import numpy as np
import pytest
import torch

import scorefusion as sf
from scorefusion.data import paper_1d
from scorefusion.distributions import sample_gaussian
from scorefusion.fusion import minimize_quadratic_on_simplex
from scorefusion.losses import sample_times
from scorefusion.metrics import gaussian_tv
from scorefusion.nets import ScoreMLP, ScoreUNet
from scorefusion.sde import time_grid

SDE = sf.VESDE()
PAPER = paper_1d()
AUX = [sf.AnalyticScore(d, SDE) for d in PAPER.aux]
X0 = torch.randn(16, 1, dtype=torch.float64)
X2 = torch.zeros(4, 2, dtype=torch.float64)
G1 = sf.Gaussian([0.0], [[1.0]])
G2 = sf.Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
G3 = sf.Gaussian(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
TWO = sf.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
MIX_MEANS, MIX_COVS = [[0.0], [1.0]], [[[1.0]], [[1.0]]]
MLP = ScoreMLP(SDE, 1, hidden=8, depth=1)
UNET = ScoreUNet(SDE, base=8)
IMAGES = torch.zeros(2, 1, 8, 8)


def bad_shape_score(x, t):
    return torch.zeros(x.shape[0], 3, dtype=x.dtype)


CASES = [
    # -- weights of the fusion -------------------------------------------------------------------
    ("lam off the simplex", lambda: sf.kl_barycenter([G1, G1], [0.7, 0.7]), ValueError, "lam"),
    ("negative lam", lambda: sf.kl_barycenter([G1, G1], [1.5, -0.5]), ValueError, "lam"),
    ("lam wrong length", lambda: sf.FusedScore(AUX, [1.0]), ValueError, "lam"),
    ("lam with NaN", lambda: sf.FusedScore(AUX, [math.nan, 1.0]), ValueError, "lam"),
    ("lam with inf", lambda: sf.FusedScore(AUX, [math.inf, 0.0]), ValueError, "lam"),
    ("lam is a string", lambda: sf.FusedScore(AUX, "uniform"), TypeError, "lam"),
    ("lam complex tensor", lambda: sf.FusedScore(AUX, torch.tensor([0.5 + 1j, 0.5 - 1j])), TypeError, "lam"),
    ("lam complex numpy", lambda: sf.FusedScore(AUX, np.array([0.5 + 0j, 0.5])), TypeError, "lam"),
    ("lam of rank 2", lambda: sf.FusedScore(AUX, [[0.5, 0.5]]), ValueError, "lam"),
    ("empty aux", lambda: sf.FusedScore([], []), ValueError, "aux"),
    ("aux not callable", lambda: sf.FusedScore([1, 2], [0.5, 0.5]), TypeError, "aux"),
    ("aux output shape differs", lambda: sf.FusedScore([bad_shape_score, AUX[0]], [0.5, 0.5])(X0, 0.5),
     ValueError, "aux[0]"),
    ("vectorize not a bool", lambda: sf.FusedScore(AUX, [0.5, 0.5], vectorize="yes"), ValueError, "vectorize"),
    # -- distributions ---------------------------------------------------------------------------
    ("covariance not SPD", lambda: sf.Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), ValueError, "cov"),
    ("covariance not symmetric", lambda: sf.Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]), ValueError, "cov"),
    ("covariance wrong shape", lambda: sf.Gaussian([0.0, 0.0], [[1.0]]), ValueError, "cov"),
    ("covariance complex", lambda: sf.Gaussian([0.0], torch.tensor([[1.0 + 1j]])), TypeError, "cov"),
    ("mean with inf", lambda: sf.Gaussian([math.inf], [[1.0]]), ValueError, "mean"),
    ("mean of rank 2", lambda: sf.Gaussian([[0.0]], [[1.0]]), ValueError, "mean"),
    ("mean is None", lambda: sf.Gaussian(None, [[1.0]]), TypeError, "mean"),
    ("mixture weights not summing to 1", lambda: sf.GaussianMixture([0.5, 0.6], MIX_MEANS, MIX_COVS),
     ValueError, "weights"),
    ("mixture weights negative", lambda: sf.GaussianMixture([1.5, -0.5], MIX_MEANS, MIX_COVS), ValueError, "weights"),
    ("mixture weights NaN", lambda: sf.GaussianMixture([math.nan, 1.0], MIX_MEANS, MIX_COVS), ValueError, "weights"),
    ("mixture weights wrong length", lambda: sf.GaussianMixture([1.0], MIX_MEANS, MIX_COVS), ValueError, "weights"),
    ("mixture weights complex", lambda: sf.GaussianMixture([0.5 + 1j, 0.5], MIX_MEANS, MIX_COVS),
     TypeError, "weights"),
    ("mixture means wrong rank", lambda: sf.GaussianMixture([1.0], [0.0], [[[1.0]]]), ValueError, "means"),
    ("mixture means empty", lambda: sf.GaussianMixture([], torch.zeros(0, 1), torch.zeros(0, 1, 1)),
     ValueError, "means"),
    ("mixture means a string", lambda: sf.GaussianMixture([1.0], "origin", [[[1.0]]]), TypeError, "means"),
    ("mixture covs wrong shape", lambda: sf.GaussianMixture([0.5, 0.5], MIX_MEANS, [[[1.0]]]), ValueError, "covs"),
    ("mixture covs[1] singular", lambda: sf.GaussianMixture([0.5, 0.5], MIX_MEANS, [[[1.0]], [[0.0]]]),
     ValueError, "covs[1]"),
    ("mixture covs[0] not symmetric",
     lambda: sf.GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]]), ValueError, "covs[0]"),
    ("log_prob of wrong dimension", lambda: G2.log_prob(torch.zeros(3, 3, dtype=torch.float64)), ValueError, "x"),
    ("log_prob of NaN", lambda: G1.log_prob(torch.tensor([[math.nan]])), ValueError, "x"),
    ("log_prob of integers", lambda: G1.log_prob(torch.zeros(3, 1, dtype=torch.long)), TypeError, "x"),
    ("log_prob of a 1-D tensor", lambda: G1.log_prob(torch.zeros(3, dtype=torch.float64)), ValueError, "x"),
    ("empty points", lambda: G1.score(torch.zeros(0, 1)), ValueError, "x"),
    ("score with NaN scale", lambda: TWO.score(X0, math.nan), ValueError, "scale"),
    ("score with negative std", lambda: TWO.score(X0, 1.0, -0.1), ValueError, "std"),
    ("score with scale = std = 0", lambda: TWO.score(X0, 0.0, 0.0), ValueError, "std"),
    ("score with std of wrong length", lambda: TWO.score(X0, 1.0, torch.ones(3)), ValueError, "std"),
    ("score with scale a string", lambda: TWO.score(X0, "one"), TypeError, "scale"),
    ("log_prob with complex std", lambda: TWO.log_prob(X0, 1.0, torch.tensor(1j)), TypeError, "std"),
    ("score_and_divergence with inf std", lambda: TWO.score_and_divergence(X0, 1.0, math.inf), ValueError, "std"),
    ("sample n = 0", lambda: G1.sample(0), ValueError, "n"),
    ("sample n a float", lambda: G1.sample(2.5), TypeError, "n"),
    ("sample_gaussian of a mixture", lambda: sample_gaussian(TWO, 5), TypeError, "dist"),
    ("sample_gaussian n negative", lambda: sample_gaussian(G1, -1), ValueError, "n"),
    ("t outside (0, T]", lambda: G1.noised(SDE, 1.5), ValueError, "t"),
    ("noised at NaN time", lambda: G1.noised(SDE, math.nan), ValueError, "t"),
    ("noised at several times", lambda: G1.noised(SDE, torch.tensor([0.1, 0.2])), ValueError, "t"),
    ("noised by a string sde", lambda: G1.noised("ve", 0.5), TypeError, "sde"),
    ("kl of a mixture", lambda: sf.kl_gaussian(paper_1d().aux[0], G1), TypeError, "p"),
    ("kl dimension mismatch", lambda: sf.kl_gaussian(G1, G2), ValueError, "p and q"),
    # -- scores ----------------------------------------------------------------------------------
    ("t = 0", lambda: AUX[0](X0, 0.0), ValueError, "t"),
    ("t wrong shape", lambda: AUX[0](X0, torch.ones(3)), ValueError, "t"),
    ("analytic t > T", lambda: AUX[0](X0, 1.5), ValueError, "t"),
    ("analytic t NaN", lambda: AUX[0](X0, math.nan), ValueError, "t"),
    ("analytic t a string", lambda: AUX[0](X0, "late"), TypeError, "t"),
    ("analytic t of rank 2", lambda: AUX[0](X0, torch.full((16, 1), 0.5)), ValueError, "t"),
    ("analytic x wider than the mixture", lambda: AUX[0](X2, 0.5), ValueError, "x"),
    ("analytic x 1-D", lambda: AUX[0](torch.tensor([1.0, -3.0], dtype=torch.float64), 0.5), ValueError, "x"),
    ("analytic x integers", lambda: AUX[0](torch.zeros(4, 1, dtype=torch.long), 0.5), TypeError, "x"),
    ("analytic x a list", lambda: AUX[0]([[0.0]], 0.5), TypeError, "x"),
    ("analytic divergence x wrong width", lambda: AUX[0].divergence(X2, 0.5), ValueError, "x"),
    ("analytic log_prob x NaN", lambda: AUX[0].log_prob(torch.full((2, 1), math.nan), 0.5), ValueError, "x"),
    ("analytic dist not a distribution", lambda: sf.AnalyticScore("p", SDE), TypeError, "dist"),
    ("analytic sde missing", lambda: sf.AnalyticScore(G1, None), TypeError, "sde"),
    # -- networks --------------------------------------------------------------------------------
    ("mlp t = 0", lambda: MLP(torch.zeros(3, 1), 0.0), ValueError, "t"),
    ("mlp t < 0", lambda: MLP(torch.zeros(3, 1), -0.5), ValueError, "t"),
    ("mlp t > T", lambda: MLP(torch.zeros(3, 1), 1.5), ValueError, "t"),
    ("mlp t wrong length", lambda: MLP(torch.zeros(3, 1), torch.full((2,), 0.5)), ValueError, "t"),
    ("mlp t complex", lambda: MLP(torch.zeros(3, 1), torch.tensor(0.5 + 0j)), TypeError, "t"),
    ("mlp integer x", lambda: MLP(torch.zeros(3, 1, dtype=torch.long), 0.5), TypeError, "x"),
    ("mlp x a list", lambda: MLP([[0.0]], 0.5), TypeError, "x"),
    ("mlp x wrong width", lambda: MLP(torch.zeros(3, 2), 0.5), ValueError, "x"),
    ("mlp empty x", lambda: MLP(torch.zeros(0, 1), 0.5), ValueError, "x"),
    ("mlp embed_dim odd", lambda: ScoreMLP(SDE, 1, embed_dim=3), ValueError, "embed_dim"),
    ("mlp dim zero", lambda: ScoreMLP(SDE, 0), ValueError, "dim"),
    ("mlp depth a float", lambda: ScoreMLP(SDE, 1, depth=2.0), TypeError, "depth"),
    ("mlp sde a string", lambda: ScoreMLP("ve", 1), TypeError, "sde"),
    ("unet t = 0", lambda: UNET(IMAGES, 0.0), ValueError, "t"),
    ("unet t > T", lambda: UNET(IMAGES, torch.full((2,), 2.0)), ValueError, "t"),
    ("unet integer x", lambda: UNET(IMAGES.long(), 0.5), TypeError, "x"),
    ("unet x wrong size", lambda: UNET(torch.zeros(2, 1, 16, 16), 0.5), ValueError, "x"),
    ("unet base odd", lambda: ScoreUNet(SDE, base=7), ValueError, "base"),
    ("unet groups do not divide", lambda: ScoreUNet(SDE, base=12, groups=8), ValueError, "groups"),
    ("unet channel_mult empty", lambda: ScoreUNet(SDE, channel_mult=()), TypeError, "channel_mult"),
    ("unet channel_mult zero", lambda: ScoreUNet(SDE, channel_mult=(1, 0)), ValueError, "channel_mult"),
    ("unet image_size not divisible", lambda: ScoreUNet(SDE, image_size=6, channel_mult=(1, 2, 2)),
     ValueError, "image_size"),
    # -- barycenters -----------------------------------------------------------------------------
    ("dimension mismatch in barycenter", lambda: sf.kl_barycenter([G1, G2], [0.5, 0.5]), ValueError, "dists"),
    ("not a distribution", lambda: sf.kl_barycenter([G1, "p"], [0.5, 0.5]), TypeError, "dists[1]"),
    ("empty dists", lambda: sf.kl_barycenter([], []), ValueError, "dists"),
    ("barycenter of 20 mixtures (2**20 tuples)", lambda: sf.kl_barycenter([TWO] * 20, [0.05] * 20),
     ValueError, "max_components"),
    ("max_components zero", lambda: sf.kl_barycenter([TWO, TWO], [0.5, 0.5], max_components=0),
     ValueError, "max_components"),
    ("geometric n_grid zero", lambda: sf.GeometricMixture([G1, G1], [0.5, 0.5], n_grid=0), ValueError, "n_grid"),
    ("geometric n_importance negative", lambda: sf.GeometricMixture([G1, G1], [0.5, 0.5], n_importance=-1),
     ValueError, "n_importance"),
    ("geometric score x wrong width", lambda: sf.GeometricMixture([G1, G1], [0.5, 0.5]).score(X2),
     ValueError, "x"),
    ("geometric sample n = 0", lambda: sf.GeometricMixture([G1, G1], [0.5, 0.5]).sample(0), ValueError, "n"),
    # -- metrics ---------------------------------------------------------------------------------
    ("w1 dimension mismatch", lambda: sf.w1_distance(torch.zeros(3, 1), torch.zeros(3, 2)), ValueError, "x and y"),
    ("w1 empty", lambda: sf.w1_distance(torch.zeros(0, 1), torch.zeros(3, 1)), ValueError, "x and y"),
    ("w1 NaN", lambda: sf.w1_distance(torch.full((3, 1), math.nan), torch.zeros(3, 1)), ValueError, "x"),
    ("tv dimension mismatch", lambda: sf.tv_distance(G1, G2), ValueError, "p and q"),
    ("tv n_grid = 1", lambda: sf.tv_distance(G1, sf.Gaussian([3.0], [[1.0]]), n_grid=1), ValueError, "n_grid"),
    ("tv n_grid = 0", lambda: sf.tv_distance(G1, G1, n_grid=0), ValueError, "n_grid"),
    ("tv grid too coarse", lambda: sf.tv_distance(sf.Gaussian([0.0], [[0.01]]), sf.Gaussian([0.0], [[100.0]]),
                                                  n_grid=1001), ValueError, "n_grid"),
    ("tv of a score", lambda: sf.tv_distance(AUX[0], G1), TypeError, "p"),
    ("tv Monte Carlo with one draw", lambda: sf.tv_distance(G3, G3, n_samples=1), ValueError, "n_samples"),
    ("tv_histogram in 2-D", lambda: sf.tv_histogram(torch.zeros(5, 2), G2), ValueError, "x"),
    ("tv_histogram q in 2-D", lambda: sf.tv_histogram(torch.zeros(5, 1), G2), ValueError, "q"),
    ("tv_histogram bins zero", lambda: sf.tv_histogram(X0, G1, bins=0), ValueError, "bins"),
    ("tv_histogram bounds reversed", lambda: sf.tv_histogram(X0, G1, bounds=(1.0, -1.0)), ValueError, "bounds"),
    ("tv_histogram bounds a string", lambda: sf.tv_histogram(X0, G1, bounds="wide"), TypeError, "bounds"),
    ("tv_histogram constant x", lambda: sf.tv_histogram(torch.ones(5, 1), G1), ValueError, "x"),
    ("kl_mc stderr of one draw", lambda: sf.kl_mc(G1, G1, n_samples=1, return_stderr=True),
     ValueError, "n_samples"),
    ("kl_mc q a string", lambda: sf.kl_mc(G1, "q"), TypeError, "q"),
    ("gaussian_tv of a mixture", lambda: gaussian_tv(G1, TWO), TypeError, "q"),
    ("gaussian_tv dimension mismatch", lambda: gaussian_tv(G1, G2), ValueError, "p and q"),
    ("gaussian_tv one draw", lambda: gaussian_tv(G1, G1, n_samples=1), ValueError, "n_samples"),
    # -- fitting, losses, SDEs -------------------------------------------------------------------
    ("NaN in data", lambda: sf.fit_weights(AUX, torch.tensor([[math.nan]], dtype=torch.float64), SDE), ValueError,
     "x0"),
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
]


def names_argument(message, argument):
    """Whether ``argument`` occurs in ``message`` as a word (not inside another identifier)."""
    return re.search(rf"(?<![\w.]){re.escape(argument)}(?![\w(])", message) is not None


def assert_clear_error(name, call, error, words):
    """``call()`` raises exactly ``error`` (not a subclass), whose message names every one of ``words``."""
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error, f"{name}: {type(info.value).__name__} is a subclass, not {error.__name__}"
    for word in words:
        assert names_argument(str(info.value), word), f"{name}: {word!r} not named in {str(info.value)!r}"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name, call, error, argument", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(name, call, error, argument):
    assert_clear_error(name, call, error, (argument,))


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


def test_names_argument_matches_words_only():
    assert names_argument("x must have shape (n, 1)", "x")
    assert not names_argument("expected a tensor", "x")
    assert names_argument("covs[1] is not symmetric positive definite", "covs[1]")
    assert not names_argument("covs[1] is not symmetric positive definite", "cov")
