"""lab.gcd (chapter 10's experiment): data sets, binned TV, cached training with sampler snapshots,
learning curves, exact energy samples."""

import math

import numpy as np
import pytest
import torch

from lab import gcd as lg
from scorefusion.related import gcd

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = lg.GCDConfig(hidden=8, depth=1, n_steps=2, batch_size=32, iters=6, n_langevin=2, n_train=64, n_held=200,
                    n_eval=50, n_grid=21, curve_every=4)


def test_ring_and_moons():
    p = lg.ring(torch.arange(1.0, 9.0))
    assert torch.allclose(p.weights, torch.arange(1.0, 9.0, dtype=torch.float64) / 36)
    assert torch.allclose(p.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="weights"):
        lg.ring(torch.ones(7))
    with pytest.raises(ValueError, match="std"):
        lg.ring(torch.ones(8), std=0.0)
    a, b = lg.moons(100, 2**40 + 3), lg.moons(100, 2**40 + 3)
    assert a.shape == (100, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, lg.moons(100, 4))


def test_config_and_datasets():
    assert TINY.curve_iterations == (4, 6)  # the last iteration is always recorded
    assert lg.GCDConfig().curve_iterations[-1] == 2000 and lg.GCDConfig.fast().curve_iterations == (100, 200, 300, 400)
    assert TINY.bounds == (-4.0, 4.0)
    data = lg.datasets(TINY)
    assert set(data) == {"ring", "moons"}
    for train, held in data.values():
        assert train.shape == (64, 2) and held.shape == (200, 2)
    assert torch.equal(data["ring"][0], lg.datasets(TINY)["ring"][0])


def test_hist_tv():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=gen)
    assert lg.hist_tv(x, x, 4.0) == 0.0
    assert lg.hist_tv(x * 0.1 - 3.0, x * 0.1 + 3.0, 4.0) == 1.0
    outside = torch.full((10, 2), 9.0)
    assert lg.hist_tv(outside, x.clamp(-3.0, 3.0), 4.0) == pytest.approx(1.0)  # mass outside the square counts
    w1, tv = lg.sample_scores(x[:TINY.n_eval], x[:TINY.n_eval], TINY)
    assert w1 == pytest.approx(0.0, abs=1e-9) and tv == 0.0
    with pytest.raises(ValueError, match="shape"):
        lg.hist_tv(torch.zeros(3, 3), x, 4.0)


def test_training_records_snapshots_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    train, held = lg.datasets(TINY)["ring"]
    models = {m: lg.train_method(m, "ring", train, TINY, 0) for m in lg.METHODS}
    for method in ("gcd", "elbo"):
        snaps = models[method]["snapshots"]
        assert len(snaps) == 2
        assert all(torch.equal(p, q) for p, q in zip(snaps[-1].parameters(), models[method]["sampler"].parameters()))
        assert not torch.equal(snaps[0].net[0].weight, snaps[1].net[0].weight)
        curve = lg.learning_curve(models[method], held, TINY, 0, "ring")
        assert curve.shape == (2, 2) and np.isfinite(curve).all()
    fresh = lg.train_method("elbo", "ring", train, TINY, 0)  # from the cache
    assert torch.equal(fresh["sampler"].net[0].weight, models["elbo"]["sampler"].net[0].weight)
    # CD trains the energy only; the sampler trained alone leaves its (initial) energy as it was
    assert not torch.equal(models["cd"]["energy"].net[0].weight, models["elbo"]["energy"].net[0].weight)
    started = lg.train_method("gcd", "other", train, TINY, 0, init=("ring-gcd", models["gcd"]))
    assert not torch.equal(started["energy"].net[0].weight, models["gcd"]["energy"].net[0].weight)
    with pytest.raises(ValueError, match="method"):
        lg.train_method("sgd", "ring", train, TINY, 0)


def test_energy_and_langevin_samples():
    energy = gcd.EnergyMLP(2, 8, 1)
    x = lg.energy_samples(energy, 30, TINY, torch.Generator().manual_seed(0))
    step = 8.0 / (TINY.n_grid - 1)
    assert x.shape == (30, 2) and x.abs().max() <= 4.0 + step / 2 + 1e-6
    _, dens, area = lg.energy_density(energy, TINY)
    assert math.isclose(float(dens.sum() * area), 1.0, rel_tol=1e-9)
    y = lg.langevin_samples(energy, 7, TINY, torch.Generator().manual_seed(0))
    assert y.shape == (7, 2) and torch.isfinite(y).all()
