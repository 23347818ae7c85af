"""Golden steps: one step of a sampler, and the time draws of the losses, against updates computed by hand.

These pin the constants that distribution-level checks cannot see: a predictor-corrector whose
corrector step lost its factor alpha (DDPM's alpha_i = 1 - beta(t) dt on the VP SDE) still samples
roughly the right distribution, and times drawn from (0, t_max) instead of (t_min, t_max) still
train a model.
"""

import math

import pytest
import torch

import scorefusion as sf
from scorefusion import sampling
from scorefusion.losses import sample_times

M0, C0 = 0.5, 0.7  # data N(M0, C0) in 1-D: its noised score is known by hand
SNR = 0.16


def _vp_scale(t, beta_min, beta_max):
    return math.exp(-0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min)


def _hand_score(sde):
    """The score of N(M0, C0) noised by ``sde``, written out (no library marginal)."""
    if isinstance(sde, sf.VPSDE):
        def scale_var(t):
            a = _vp_scale(t, sde.beta_min, sde.beta_max)
            return a, a**2 * C0 + 1 - a**2
    else:
        def scale_var(t):
            return 1.0, C0 + (sde.sigma ** (2 * t) - 1) / (2 * math.log(sde.sigma))

    def score(x, t):
        out = torch.empty_like(x)
        for j in range(x.shape[0]):
            a, v = scale_var(float(t[j]))
            out[j] = -(x[j] - a * M0) / v
        return out

    return score, scale_var


def _hand_pc_step(sde, x, z, T, eps, alpha):
    """One corrector step at T (Song et al. 2021, Algorithms 4-5) and the mean of one predictor step to eps."""
    _, scale_var = _hand_score(sde)
    dt = T - eps
    _, v = scale_var(T)
    grad = -(x - (scale_var(T)[0] * M0)) / v
    step = 2 * alpha * (SNR * z.abs().mean() / grad.abs().mean()) ** 2  # 1-D: the norms are absolute values
    x1 = x + step * grad + torch.sqrt(2 * step) * z
    if isinstance(sde, sf.VPSDE):
        beta_T = sde.beta_min + T * (sde.beta_max - sde.beta_min)
        drift, g2 = -0.5 * beta_T * x1, beta_T
    else:
        drift, g2 = torch.zeros_like(x1), sde.sigma ** (2 * T)
    s1 = -(x1 - scale_var(T)[0] * M0) / v
    return x1 - (drift - g2 * s1) * dt


@pytest.mark.parametrize("sde", [sf.VPSDE(beta_min=0.1, beta_max=1.0), sf.VESDE(sigma=5.0)], ids=["VP", "VE"])
def test_one_predictor_corrector_step_matches_the_hand_computed_update(sde):
    T, eps = sde.T, 0.5
    x_T = torch.tensor([[1.3], [-0.4], [2.2], [0.1]], dtype=torch.float64)
    score, _ = _hand_score(sde)
    out = sampling.predictor_corrector(score, sde, x_T=x_T, n_steps=1, snr=SNR, n_corrector=1, eps=eps,
                                       generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = torch.randn(x_T.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # the corrector's draw
    if isinstance(sde, sf.VPSDE):
        alpha = 1 - (sde.beta_min + T * (sde.beta_max - sde.beta_min)) * (T - eps)  # DDPM's alpha_i = 0.5 here
        assert alpha == pytest.approx(0.5)
    else:
        alpha = 1.0
    expected = _hand_pc_step(sde, x_T, z, T, eps, alpha)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12), (out, expected)
    if isinstance(sde, sf.VPSDE):
        # the test can fail: without the factor alpha the update moves by far more than the tolerance
        wrong = _hand_pc_step(sde, x_T, z, T, eps, 1.0)
        assert (wrong - expected).abs().max() > 1e-3


def test_sample_times_respect_both_ends_of_a_narrow_range():
    sde, n, (lo, hi) = sf.VPSDE(), 20_000, (0.30, 0.31)
    t = sample_times(n, sde, (lo, hi), torch.Generator().manual_seed(1))
    assert t.shape == (n,) and t.dtype == torch.float64
    assert lo <= float(t.min()) < lo + 1e-3 and hi - 1e-3 < float(t.max()) <= hi
    se = (hi - lo) / math.sqrt(12 * n)  # standard error of the mean of U(lo, hi)
    assert abs(float(t.mean()) - 0.5 * (lo + hi)) < 5 * se
    assert abs(float(t.std()) - (hi - lo) / math.sqrt(12)) < 0.02 * (hi - lo) / math.sqrt(12)
