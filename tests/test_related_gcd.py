"""Generalized contrastive divergence (scorefusion.related.gcd): tiny configurations, shapes, determinism, bad input."""

import math

import numpy as np
import pytest
import torch
from toy_data import ring

import scorefusion as sf
from scorefusion.related import gcd

pytestmark = pytest.mark.usefixtures("one_thread")


def _w1(sampler, x, seed=5):
    return sf.w1_distance(sampler.sample(400, generator=torch.Generator().manual_seed(seed)).double(), x[:400].double())


def test_gcd_learns_energy_and_sampler_and_is_deterministic():
    mix, x = ring(1024, 0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        e, s = gcd.EnergyMLP(2, 32, 2), gcd.DiffusionSampler(2, 4, 32)
        pts, d0, area = gcd.energy_density_on_grid(e, bounds=(-3.5, 3.5), n_grid=60)
        w1_before = _w1(s, x)
        res = gcd.train_gcd(e, s, x, iters=300, batch_size=128, lr_energy=3e-3, lr_sampler=3e-3,
                            generator=torch.Generator().manual_seed(1), progress=False)
        _, d1, _ = gcd.energy_density_on_grid(e, bounds=(-3.5, 3.5), n_grid=60)
        true = mix.log_prob(pts).exp()
        runs.append((res.history, gcd.tv_on_grid(d0, true, area), gcd.tv_on_grid(d1, true, area), w1_before, _w1(s, x)))
    assert runs[0] == runs[1]  # same seeds, same numbers
    hist, tv0, tv1, w1_before, w1_after = runs[0]
    assert set(hist) == {"cd_gap", "sampler_loss", "entropy"} and all(len(v) == 300 for v in hist.values())
    assert tv1 < tv0 - 0.1  # the energy moved toward the data density without any MCMC
    assert w1_after < 0.6 * w1_before  # and the sampler toward the data


class _Reversal(gcd.DiffusionSampler):
    """The exact reversal of the VP chain for N(0, I) data: x_{k+1} = sqrt(1 - b_k) x_k + sqrt(b_k) z."""

    def drift(self, x, k):
        return ((1 - self.betas[k]).sqrt() - 1) * x


def test_entropy_bound_is_tight_for_the_reversal_and_below_the_entropy_otherwise():
    gen = torch.Generator().manual_seed(0)
    exact = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2)).entropy()
    rev = _Reversal(2, 5, 8)
    with torch.no_grad():
        bound = rev.entropy_lower_bound(rev.trajectory(200_000, generator=gen))
    assert abs(float(bound - exact)) < 0.02  # x_K ~ N(0, I) and the bound is tight (gap 0)
    zero = gcd.DiffusionSampler(2, 5, 8)
    with torch.no_grad():
        zero.net[-1].weight.zero_()
        zero.net[-1].bias.zero_()
        var = 1 + float(zero.log_sigma.exp().pow(2).sum())  # x_K = x_0 + sum_k sigma_k z_k
        bound = zero.entropy_lower_bound(zero.trajectory(200_000, generator=gen))
    assert float(bound) < math.log(2 * math.pi * math.e * var) - 0.1


def test_diffusion_elbo_decreases_and_learns():
    _, x = ring(1024, 0)
    torch.manual_seed(0)
    s = gcd.DiffusionSampler(2, 4, 32)
    w1_before = _w1(s, x)
    res = gcd.train_diffusion_elbo(s, x, iters=300, batch_size=128, lr=3e-3, generator=torch.Generator().manual_seed(1),
                                   progress=False)
    nll = res.history["nll_bound"]
    assert res.energy is None and len(nll) == 300
    assert sum(nll[-30:]) < sum(nll[:30]) - 30 * 0.5  # the bound improved by more than 0.5 nats
    assert _w1(s, x) < 0.6 * w1_before
    path = s.noising_path(x[:7], generator=torch.Generator().manual_seed(2))
    assert len(path) == 5 and all(p.shape == (7, 2) for p in path) and torch.equal(path[-1], x[:7])
    betas = gcd.cosine_betas(4)
    assert betas.shape == (4,) and bool((betas[:-1] > betas[1:]).all()) and float(betas[0]) > 0.99


def test_fused_sampler_reduces_to_a_component_and_averages_drifts():
    torch.manual_seed(0)
    s1, s2 = gcd.DiffusionSampler(2, 3, 16), gcd.DiffusionSampler(2, 3, 16)
    one = gcd.FusedSampler([s1, s2], [1.0, 0.0]).sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(one, s1.sample(50, generator=torch.Generator().manual_seed(3)), atol=1e-6)
    half = gcd.FusedSampler([s1, s2], [0.5, 0.5]).sample(50, generator=torch.Generator().manual_seed(3))
    assert half.shape == (50, 2) and not torch.allclose(half, one)
    with pytest.raises(ValueError, match="n_steps"):
        gcd.FusedSampler([s1, gcd.DiffusionSampler(2, 4, 16)], [0.5, 0.5])
    with pytest.raises(ValueError, match="lam"):
        gcd.FusedSampler([s1, s2], [0.7, 0.7])


def test_cd_langevin_and_grid_tools():
    mix, x = ring(512, 0)
    torch.manual_seed(0)
    e = gcd.EnergyMLP(2, 32, 2)
    pts, d0, area = gcd.energy_density_on_grid(e, bounds=(-3.5, 3.5), n_grid=60)
    true = mix.log_prob(pts).exp()
    tv0 = gcd.tv_on_grid(d0, true, area)
    res = gcd.train_contrastive_divergence(e, x, iters=80, batch_size=128, lr=3e-3, n_langevin=10, step_size=0.02,
                                           generator=torch.Generator().manual_seed(1), progress=False)
    assert res.sampler is None and len(res.history["cd_gap"]) == 80
    _, d1, _ = gcd.energy_density_on_grid(e, bounds=(-3.5, 3.5), n_grid=60)
    assert abs(float(d1.sum()) * area - 1.0) < 1e-9
    assert gcd.tv_on_grid(d1, true, area) < tv0
    y = gcd.grid_sample(pts, d1, 100, generator=torch.Generator().manual_seed(0))
    assert y.shape == (100, 2)
    # Langevin on an exact Gaussian energy reaches its mean and variance
    z = gcd.langevin(lambda v: 0.5 * (v - 1.0).pow(2).sum(-1), torch.zeros(4000, 2), n_steps=300, step_size=0.05,
                     generator=torch.Generator().manual_seed(0))
    assert (z.mean(0) - 1.0).abs().max() < 0.1 and (z.var(0) - 1.0).abs().max() < 0.1
    # energy fusion: E_1 = -log p1, E_2 = -log p2 exactly, target = a barycenter -> lam recovered
    p1 = sf.Gaussian(torch.tensor([-1.0, 0.0]).double(), torch.eye(2).double())
    p2 = sf.Gaussian(torch.tensor([1.0, 0.0]).double(), torch.eye(2).double())
    target = sf.kl_barycenter([p1, p2], torch.tensor([0.3, 0.7]).double())
    xt = target.sample(4000, generator=torch.Generator().manual_seed(0)).float()
    es = [lambda v, p=p: -p.log_prob(v.double()) for p in (p1, p2)]
    lam = gcd.fit_energy_weights(es, xt, bounds=(-6.0, 6.0), n_grid=120)
    assert abs(lam[0] - 0.3) < 0.05
    # and the normalised e^{-sum lam_i E_i} is the barycenter's density
    pts, dens, _ = gcd.energy_density_on_grid(es, lam=[0.3, 0.7], bounds=(-6.0, 6.0), n_grid=121)
    assert torch.allclose(dens, target.log_prob(pts).exp(), atol=1e-6)


def test_langevin_step_convention():
    # one step is x - (eps/2) grad E + sqrt(eps) z, with z from the given generator
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = gcd.langevin(lambda v: 0.5 * (v - 1.0).pow(2).sum(-1), x, n_steps=1, step_size=0.3,
                       generator=torch.Generator().manual_seed(2))
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(got, x - 0.15 * (x - 1.0) + math.sqrt(0.3) * z, atol=1e-14, rtol=0)


def _nll_on_grid(energies, x, lam, bounds, n_grid):
    """The objective of fit_energy_weights, written out: mean energy of x + log of the grid-sum Z."""
    pts, dens, _ = gcd.energy_density_on_grid(energies, lam=lam, bounds=bounds, n_grid=n_grid)
    e0 = sum(float(w) * float(e(pts[:1].float()).double()) for w, e in zip(lam, energies))
    log_z = -e0 - math.log(float(dens[0]))  # q(g) = e^{-E(g)} / Z at any node g
    return sum(float(w) * float(e(x).double().mean()) for w, e in zip(lam, energies)) + log_z


@pytest.mark.parametrize("target_lam", [(0.2, 0.5, 0.3), (1.0, 0.0, 0.0)])
def test_energy_weights_by_newton_match_slsqp(target_lam):
    # Newton steps with the exact simplex QP reach SLSQP's optimum (interior and on an edge of the
    # simplex) and an objective no worse than SLSQP's.
    from scipy.optimize import minimize

    means = [(-1.0, 0.0), (1.0, 0.5), (0.0, -1.5)]
    ps = [sf.Gaussian(torch.tensor(m).double(), (0.6 + 0.3 * i) * torch.eye(2).double()) for i, m in enumerate(means)]
    es = [lambda v, p=p: -p.log_prob(v.double()) for p in ps]
    lam_true = torch.tensor(target_lam).double()
    xt = sf.kl_barycenter([ps[i] for i in range(3) if lam_true[i] > 0], lam_true[lam_true > 0])
    xt = xt.sample(3000, generator=torch.Generator().manual_seed(2)).float()
    kw = {"bounds": (-6.0, 6.0), "n_grid": 90}
    lam = gcd.fit_energy_weights(es, xt, **kw)
    assert lam.shape == (3,) and abs(lam.sum() - 1) < 1e-12 and (lam >= 0).all()
    res = minimize(lambda v: _nll_on_grid(es, xt, np.clip(v, 0, None) / np.clip(v, 0, None).sum(), **kw),
                   np.full(3, 1 / 3), method="SLSQP", bounds=[(0.0, 1.0)] * 3,
                   constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1.0}], options={"ftol": 1e-12})
    ref = np.clip(res.x, 0, None) / np.clip(res.x, 0, None).sum()
    assert np.abs(lam - ref).max() < 1e-4
    assert _nll_on_grid(es, xt, lam, **kw) <= _nll_on_grid(es, xt, ref, **kw) + 1e-10
    assert np.abs(lam - lam_true.numpy()).max() < 0.05  # and it is the weights that made the target


def test_gcd_bad_input():
    e, s = gcd.EnergyMLP(2, 8, 1), gcd.DiffusionSampler(3, 2, 8)
    with pytest.raises(ValueError, match="sampler.dim"):
        gcd.train_gcd(e, s, torch.zeros(10, 2), iters=1, batch_size=5, progress=False)
    with pytest.raises(ValueError, match="data"):
        gcd.train_gcd(e, gcd.DiffusionSampler(2, 2, 8), torch.zeros(10, 3), iters=1, progress=False)
    with pytest.raises(ValueError, match="warmup"):
        gcd.train_gcd(e, gcd.DiffusionSampler(2, 2, 8), torch.zeros(10, 2), iters=3, batch_size=5, warmup=3,
                      progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        gcd.train_contrastive_divergence(e, torch.zeros(10, 2), iters=1, batch_size=50, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        gcd.train_diffusion_elbo(gcd.DiffusionSampler(2, 2, 8), torch.zeros(10, 2), iters=1, batch_size=50,
                                 progress=False)
    with pytest.raises(ValueError, match="lam"):
        gcd.energy_density_on_grid([e, e], lam=[1.0])
    with pytest.raises(ValueError, match="step_size"):
        gcd.langevin(e, torch.zeros(2, 2), step_size=-1.0)
    with pytest.raises(ValueError, match="n_grid"):
        gcd.energy_density_on_grid(e, n_grid=1)
    with pytest.raises(ValueError, match="bounds"):
        gcd.energy_density_on_grid(e, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="tol"):
        gcd.fit_energy_weights([e], torch.zeros(4, 2), tol=0.0)
    with pytest.raises(ValueError, match="n_steps"):
        gcd.DiffusionSampler(2, 0, 8)
    with pytest.raises(ValueError, match="x must have shape"):
        e(torch.zeros(4, 3))


def test_callback_sees_every_iteration_and_leaves_training_unchanged():
    _, x = ring(64, 0)

    def run(callback):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            e, s = gcd.EnergyMLP(2, 8, 1), gcd.DiffusionSampler(2, 2, 8)
        gcd.train_gcd(e, s, x, iters=5, batch_size=16, generator=torch.Generator().manual_seed(1), progress=False,
                      callback=callback)
        elbo = gcd.DiffusionSampler(2, 2, 8)
        elbo.load_state_dict(s.state_dict())
        gcd.train_diffusion_elbo(elbo, x, iters=3, batch_size=16, generator=torch.Generator().manual_seed(2),
                                 progress=False, callback=callback)
        return s, elbo

    seen = []
    with_cb = run(seen.append)
    without = run(None)
    assert seen == [1, 2, 3, 4, 5, 1, 2, 3]
    for a, b in zip(with_cb, without):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(TypeError, match="callback"):
        gcd.train_gcd(gcd.EnergyMLP(2, 8, 1), gcd.DiffusionSampler(2, 2, 8), x, iters=1, batch_size=16,
                      progress=False, callback=3)
    with pytest.raises(TypeError, match="callback"):
        gcd.train_diffusion_elbo(gcd.DiffusionSampler(2, 2, 8), x, iters=1, batch_size=16, progress=False,
                                 callback="no")
