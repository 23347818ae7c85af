"""Bad input to the processes (SDEs, samplers, likelihood, losses, weight fits, divergence, checks).

One table, as in ``test_bad_inputs.py``: each row is (id, call, error type, words the message
must contain). The test asserts the exact type and that the message names the argument as a word
(and, for faults found during a run, the time at which they happened); each row has its own 20 s
timeout, so an input that makes a solver loop fails instead of hanging the run.
"""

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from test_bad_inputs import assert_clear_error, names_argument

import scorefusion as sf
from scorefusion import sampling
from scorefusion._checks import check_batch, check_generator, check_sde, check_time
from scorefusion.divergence import divergence, draw_probes
from scorefusion.fusion import dsm_quadratic, ism_quadratic, minimize_quadratic_on_simplex
from scorefusion.integrations.diffusers import DDPMScheduleSDE
from scorefusion.losses import perturb, sample_times
from scorefusion.sde import time_grid

VE = sf.VESDE()
VP = sf.VPSDE()
DDPM = DDPMScheduleSDE(DDPMScheduler(num_train_timesteps=100))
GAUSS = sf.Gaussian([0.5], [[0.5]])
AUX = [sf.AnalyticScore(sf.Gaussian([m], [[1.0]]), VE) for m in (-1.0, 1.0)]
SCORE = sf.AnalyticScore(GAUSS, VE)
X0 = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(-1, 1)
Z1 = torch.zeros(3, 1, dtype=torch.float64)


def first_coordinate(x, t):
    """A score with the wrong output shape: (n,) for x of shape (n, 1), which would broadcast to (n, n)."""
    return -x[:, 0]


def nan_score(x, t):
    """A differentiable score that returns NaN everywhere."""
    return x * math.nan


def inf_score(x, t):
    return x * math.inf


def detached_score(x, t):
    """A score without an autograd graph (the likelihood needs its divergence)."""
    return torch.zeros_like(x).detach()


def sgd(**kwargs):
    return lambda: sf.fit_weights(AUX, X0, VE, method="sgd", epochs=1, **kwargs)


CASES = [
    # -- samplers: faults during a run name the score and the time ---------------------------------
    ("em score output shape", lambda: sampling.euler_maruyama(first_coordinate, VE, (4, 1), n_steps=5),
     ValueError, ("score",)),
    ("em score NaN", lambda: sampling.euler_maruyama(nan_score, VE, (4, 1), n_steps=5), ValueError, ("score", "t")),
    ("em score inf", lambda: sampling.euler_maruyama(inf_score, VP, (4, 1), n_steps=5), ValueError, ("score", "t")),
    ("pc score NaN", lambda: sampling.predictor_corrector(nan_score, VP, (4, 1), n_steps=5), ValueError,
     ("score", "t")),
    ("pc score output shape", lambda: sampling.predictor_corrector(first_coordinate, VP, (4, 1), n_steps=5),
     ValueError, ("score",)),
    ("flow score NaN", lambda: sampling.probability_flow(nan_score, VE, (4, 1)), ValueError, ("score", "t")),
    ("flow score inf", lambda: sampling.probability_flow(inf_score, VP, (4, 1)), ValueError, ("score", "t")),
    ("flow score output shape", lambda: sampling.probability_flow(first_coordinate, VE, (4, 1)), ValueError,
     ("score",)),
    # -- samplers: arguments ---------------------------------------------------------------------
    ("em sde a string", lambda: sampling.euler_maruyama(SCORE, "ve", (4, 1)), TypeError, ("sde",)),
    ("pc sde None", lambda: sampling.predictor_corrector(SCORE, None, (4, 1)), TypeError, ("sde",)),
    ("flow sde a class", lambda: sampling.probability_flow(SCORE, sf.VESDE, (4, 1)), TypeError, ("sde",)),
    ("em score not callable", lambda: sampling.euler_maruyama(3.0, VE, (4, 1)), TypeError, ("score",)),
    ("em generator an int", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), generator=0), TypeError,
     ("generator",)),
    ("em dtype integer", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), dtype=torch.int64), TypeError,
     ("dtype",)),
    ("em device unknown", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), device="gpu0"), ValueError,
     ("device",)),
    ("em eps NaN", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), eps=math.nan), ValueError, ("eps",)),
    ("em eps a bool", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), eps=True), ValueError, ("eps",)),
    ("em n_steps a float", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), n_steps=2.5), TypeError,
     ("n_steps",)),
    ("em n_steps a bool", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1), n_steps=True), TypeError,
     ("n_steps",)),
    ("em x_T integer", lambda: sampling.euler_maruyama(SCORE, VE, x_T=torch.zeros(4, 1, dtype=torch.long)),
     TypeError, ("x_T",)),
    ("em x_T inf", lambda: sampling.euler_maruyama(SCORE, VE, x_T=torch.full((4, 1), math.inf)), ValueError,
     ("x_T",)),
    ("em shape one entry", lambda: sampling.euler_maruyama(SCORE, VE, (4,)), ValueError, ("shape",)),
    ("em shape a float entry", lambda: sampling.euler_maruyama(SCORE, VE, (4, 1.5)), ValueError, ("shape",)),
    ("pc snr inf", lambda: sampling.predictor_corrector(SCORE, VE, (4, 1), snr=math.inf), ValueError, ("snr",)),
    ("pc snr NaN", lambda: sampling.predictor_corrector(SCORE, VE, (4, 1), snr=math.nan), ValueError, ("snr",)),
    ("pc n_corrector a float", lambda: sampling.predictor_corrector(SCORE, VE, (4, 1), n_corrector=1.5),
     ValueError, ("n_corrector",)),
    ("flow rtol inf", lambda: sampling.probability_flow(SCORE, VE, (4, 1), rtol=math.inf), ValueError, ("rtol",)),
    ("flow atol NaN", lambda: sampling.probability_flow(SCORE, VE, (4, 1), atol=math.nan), ValueError, ("atol",)),
    ("flow method not a name", lambda: sampling.probability_flow(SCORE, VE, (4, 1), method=3), TypeError,
     ("method",)),
    # -- likelihood ------------------------------------------------------------------------------
    ("likelihood score NaN", lambda: sampling.log_likelihood(nan_score, Z1, VE), ValueError, ("score", "t")),
    ("likelihood score output shape", lambda: sampling.log_likelihood(first_coordinate, Z1, VE), ValueError,
     ("score",)),
    ("likelihood score without graph", lambda: sampling.log_likelihood(detached_score, Z1, VE), ValueError,
     ("score",)),
    ("likelihood x0 integer", lambda: sampling.log_likelihood(SCORE, torch.zeros(3, 1, dtype=torch.long), VE),
     TypeError, ("x0",)),
    ("likelihood x0 one-dimensional", lambda: sampling.log_likelihood(SCORE, torch.zeros(3), VE), ValueError,
     ("x0",)),
    ("likelihood x0 a list", lambda: sampling.log_likelihood(SCORE, [[0.0]], VE), TypeError, ("x0",)),
    ("likelihood sde a string", lambda: sampling.log_likelihood(SCORE, Z1, "ve"), TypeError, ("sde",)),
    ("likelihood generator a seed", lambda: sampling.log_likelihood(SCORE, Z1, VE, generator=1), TypeError,
     ("generator",)),
    ("likelihood n_probes a bool", lambda: sampling.log_likelihood(SCORE, Z1, VE, n_probes=True), TypeError,
     ("n_probes",)),
    ("likelihood eps zero", lambda: sampling.log_likelihood(SCORE, Z1, VE, eps=0.0), ValueError, ("eps",)),
    ("bpd sde a string", lambda: sampling.bits_per_dim(SCORE, Z1, "ve"), TypeError, ("sde",)),
    ("bpd data_range letters", lambda: sampling.bits_per_dim(SCORE, Z1, VE, n_levels=3, data_range="ab"),
     ValueError, ("data_range",)),
    ("bpd n_levels a float", lambda: sampling.bits_per_dim(SCORE, Z1, VE, n_levels=2.5), TypeError, ("n_levels",)),
    # -- weight fits -----------------------------------------------------------------------------
    ("ism NaN auxiliary", lambda: sf.fit_weights([AUX[0], nan_score], X0, VE), ValueError, ("aux[1]",)),
    ("dsm NaN auxiliary", lambda: sf.fit_weights([AUX[0], nan_score], X0, VE, method="dsm"), ValueError,
     ("aux[1]",)),
    ("sgd NaN auxiliary", lambda: sf.fit_weights([AUX[0], nan_score], X0, VE, method="sgd", epochs=1),
     ValueError, ("aux",)),
    ("sgd lr NaN", sgd(lr=math.nan), ValueError, ("lr",)),
    ("sgd lr inf", sgd(lr=math.inf), ValueError, ("lr",)),
    ("sgd lr zero", sgd(lr=0.0), ValueError, ("lr",)),
    ("sgd lr negative", sgd(lr=-0.1), ValueError, ("lr",)),
    ("sgd lr a string", sgd(lr="0.1"), TypeError, ("lr",)),
    ("sgd batch_size zero", sgd(batch_size=0), ValueError, ("batch_size",)),
    ("sgd batch_size negative", sgd(batch_size=-5), ValueError, ("batch_size",)),
    ("sgd batch_size a float", sgd(batch_size=2.5), TypeError, ("batch_size",)),
    ("sgd epochs zero", lambda: sf.fit_weights(AUX, X0, VE, method="sgd", epochs=0), ValueError, ("epochs",)),
    ("sgd momentum one", sgd(momentum=1.0), ValueError, ("momentum",)),
    ("sgd momentum NaN", sgd(momentum=math.nan), ValueError, ("momentum",)),
    ("fit sde a string", lambda: sf.fit_weights(AUX, X0, "ve"), TypeError, ("sde",)),
    ("fit generator a seed", lambda: sf.fit_weights(AUX, X0, VE, generator=0), TypeError, ("generator",)),
    ("ism t beyond T", lambda: sf.fit_weights(AUX, X0, VE, t=2.0), ValueError, ("t",)),
    ("ism t a matrix", lambda: sf.fit_weights(AUX, X0, VE, t=torch.full((2, 2), 0.1)), ValueError, ("t",)),
    ("ism t a string", lambda: sf.fit_weights(AUX, X0, VE, t="small"), TypeError, ("t",)),
    ("ism t several times", lambda: ism_quadratic(AUX, X0, VE, t=torch.tensor([0.1, 0.2])), ValueError, ("t",)),
    ("ism n_probes a float", lambda: ism_quadratic(AUX, X0, VE, n_probes=0.5), TypeError, ("n_probes",)),
    ("fit method unknown", lambda: sf.fit_weights(AUX, X0, VE, method="adam"), ValueError, ("method",)),
    ("fit x0 one-dimensional", lambda: sf.fit_weights(AUX, X0[:, 0], VE), ValueError, ("x0",)),
    ("dsm t wrong length", lambda: dsm_quadratic(AUX, X0, VE, t=torch.full((3,), 0.1)), ValueError, ("t",)),
    ("dsm t NaN", lambda: dsm_quadratic(AUX, X0, VE, t=torch.full((16,), math.nan)), ValueError, ("t",)),
    ("dsm t_range three numbers", lambda: dsm_quadratic(AUX, X0, VE, t_range=(0.1, 0.2, 0.3)), ValueError,
     ("t_range",)),
    ("dsm t_range a string", lambda: dsm_quadratic(AUX, X0, VE, t_range="ab"), ValueError, ("t_range",)),
    ("simplex G with NaN", lambda: minimize_quadratic_on_simplex([[math.nan, 0.0], [0.0, 1.0]], [0.0, 0.0]),
     ValueError, ("G",)),
    # -- losses ----------------------------------------------------------------------------------
    ("dsm_loss score output shape", lambda: sf.dsm_loss(first_coordinate, X0, VE), ValueError, ("score",)),
    ("dsm_loss score not callable", lambda: sf.dsm_loss("score", X0, VE), TypeError, ("score",)),
    ("dsm_loss sde a string", lambda: sf.dsm_loss(SCORE, X0, "ve"), TypeError, ("sde",)),
    ("dsm_loss t a matrix", lambda: sf.dsm_loss(SCORE, X0, VE, t=torch.full((16, 1), 0.5)), ValueError, ("t",)),
    ("dsm_loss t wrong length", lambda: sf.dsm_loss(SCORE, X0, VE, t=torch.full((3,), 0.5)), ValueError, ("t",)),
    ("dsm_loss t beyond T", lambda: sf.dsm_loss(SCORE, X0, VE, t=torch.full((16,), 1.5)), ValueError, ("t",)),
    ("dsm_loss arguments swapped", lambda: sf.dsm_loss(SCORE, VE, X0), TypeError, ("x0",)),
    ("dsm_loss generator a string", lambda: sf.dsm_loss(SCORE, X0, VE, generator="seed"), TypeError,
     ("generator",)),
    ("sample_times t_range one number", lambda: sample_times(4, VE, (0.5,)), ValueError, ("t_range",)),
    ("sample_times sde a string", lambda: sample_times(4, "ve"), TypeError, ("sde",)),
    ("perturb sde a string", lambda: perturb(X0, "ve", torch.full((16,), 0.5)), TypeError, ("sde",)),
    # -- SDE constructors and marginals ----------------------------------------------------------
    ("VESDE sigma inf", lambda: sf.VESDE(sigma=math.inf), ValueError, ("sigma",)),
    ("VESDE sigma one", lambda: sf.VESDE(sigma=1.0), ValueError, ("sigma",)),
    ("VESDE sigma NaN", lambda: sf.VESDE(sigma=math.nan), ValueError, ("sigma",)),
    ("VESDE sigma a string", lambda: sf.VESDE(sigma="25"), TypeError, ("sigma",)),
    ("VESDE T inf", lambda: sf.VESDE(T=math.inf), ValueError, ("T",)),
    ("VESDE T zero", lambda: sf.VESDE(T=0.0), ValueError, ("T",)),
    ("VESDE T negative", lambda: sf.VESDE(T=-1.0), ValueError, ("T",)),
    ("VPSDE beta_max inf", lambda: sf.VPSDE(beta_max=math.inf), ValueError, ("beta_max",)),
    ("VPSDE beta_min negative", lambda: sf.VPSDE(beta_min=-0.1), ValueError, ("beta_min",)),
    ("VPSDE beta_max below beta_min", lambda: sf.VPSDE(beta_min=5.0, beta_max=1.0), ValueError, ("beta_max",)),
    ("VPSDE beta_min NaN", lambda: sf.VPSDE(beta_min=math.nan), ValueError, ("beta_min",)),
    ("VPSDE T NaN", lambda: sf.VPSDE(T=math.nan), ValueError, ("T",)),
    ("VE marginal negative t", lambda: VE.marginal(-0.5), ValueError, ("t",)),
    ("VP marginal t beyond T", lambda: VP.marginal(torch.tensor([0.5, 1.5])), ValueError, ("t",)),
    ("VP marginal t NaN", lambda: VP.marginal(math.nan), ValueError, ("t",)),
    ("VE marginal t a matrix", lambda: VE.marginal(torch.full((2, 2), 0.5)), ValueError, ("t",)),
    ("VE marginal t a string", lambda: VE.marginal("half"), TypeError, ("t",)),
    ("time_grid sde a string", lambda: time_grid("ve", 10), TypeError, ("sde",)),
    ("time_grid eps beyond T", lambda: time_grid(VE, 10, eps=2.0), ValueError, ("eps",)),
    ("DDPM schedule T not one", lambda: DDPMScheduleSDE(DDPMScheduler(), T=2.0), ValueError, ("T",)),
    ("DDPM schedule a string", lambda: DDPMScheduleSDE("linear"), TypeError, ("schedule",)),
    ("DDPM marginal negative t", lambda: DDPM.marginal(-0.1), ValueError, ("t",)),
    ("DDPM time of a timestep beyond N", lambda: DDPM.time(500), ValueError, ("timestep",)),
    # -- divergence ------------------------------------------------------------------------------
    ("divergence output shape", lambda: divergence(lambda z: z[:, 0], X0), ValueError, ("fn",)),
    ("divergence without graph", lambda: divergence(torch.zeros_like, X0), ValueError, ("fn",)),
    ("divergence named field", lambda: divergence(lambda z: z.sum(1), X0, name="drift"), ValueError, ("drift",)),
    ("draw_probes unknown kind", lambda: draw_probes((2, 1), 1, kind="cauchy"), ValueError, ("kind",)),
    # -- the checks themselves -------------------------------------------------------------------
    ("check_batch a list", lambda: check_batch([[0.0]]), TypeError, ("x0",)),
    ("check_batch integer", lambda: check_batch(torch.zeros(2, 1, dtype=torch.long), name="data"), TypeError,
     ("data",)),
    ("check_batch one-dimensional", lambda: check_batch(torch.zeros(3)), ValueError, ("x0",)),
    ("check_batch empty", lambda: check_batch(torch.zeros(0, 2)), ValueError, ("x0",)),
    ("check_batch NaN", lambda: check_batch(torch.tensor([[math.nan]])), ValueError, ("x0",)),
    ("check_batch dim differs", lambda: check_batch(torch.zeros(2, 3), dim=2), ValueError, ("x0",)),
    ("check_batch an SDE", lambda: check_batch(VE), TypeError, ("x0",)),
    ("check_sde None", lambda: check_sde(None), TypeError, ("sde",)),
    ("check_sde named", lambda: check_sde(DDPMScheduler(), name="schedule"), TypeError, ("schedule",)),
    ("check_time a string", lambda: check_time("a", 1.0), TypeError, ("t",)),
    ("check_time a bool", lambda: check_time(True, 1.0), TypeError, ("t",)),
    ("check_time complex", lambda: check_time(torch.tensor([0.5 + 0j]), 1.0), TypeError, ("t",)),
    ("check_time a matrix", lambda: check_time(torch.full((2, 2), 0.5), 1.0), ValueError, ("t",)),
    ("check_time zero", lambda: check_time(0.0, 1.0), ValueError, ("t",)),
    ("check_time inf", lambda: check_time(math.inf, 1.0, name="t_end"), ValueError, ("t_end",)),
    ("check_generator an int", lambda: check_generator(0), TypeError, ("generator",)),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(name, call, error, words):
    assert_clear_error(name, call, error, words)


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 50
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("t", [0.5, torch.tensor(0.5), torch.tensor([0.1, 1.0]), 1])
def test_check_time_accepts_numbers_and_0d_1d_tensors(t):
    assert check_time(t, 1.0) is t


# -- found by an independent probe after the tables were written ----------------------------------
@pytest.mark.timeout(20)
@pytest.mark.parametrize("call, error, argument", [
    (lambda: sf.fit_weights(AUX, X0[:, :, None], VE), ValueError, "x0"),
    (lambda: minimize_quadratic_on_simplex(np.eye(2), np.ones(3)), ValueError, "b"),
    (lambda: minimize_quadratic_on_simplex(np.ones((2, 3)), np.ones(2)), ValueError, "G"),
    (lambda: sampling.bits_per_dim(AUX[0], X0.clamp(0, 1), VE, data_range=(1.0, 0.0)), ValueError, "data_range"),
    (lambda: VE.prior_sample("a"), TypeError, "shape"),
], ids=["x0 does not fit aux", "b length", "G not square", "data_range reversed", "prior shape str"])
def test_probe_findings(call, error, argument):
    with pytest.raises(error) as info:
        call()
    assert names_argument(str(info.value), argument)
