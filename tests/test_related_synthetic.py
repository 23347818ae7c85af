"""Related systems (scorefusion.related): tiny configurations, shapes, determinism, bad input."""

import math

import pytest
import torch

import scorefusion as sf
from scorefusion.related import synthetic_data as sd


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ring(n, seed):
    ang = torch.arange(4) * 2 * math.pi / 4
    means = torch.stack([2 * ang.cos(), 2 * ang.sin()], 1).double()
    mix = sf.GaussianMixture(torch.full((4,), 0.25).double(), means, 0.05 * torch.eye(2).double().expand(4, 2, 2))
    return mix, mix.sample(n, generator=torch.Generator().manual_seed(seed)).float()


# ---- synthetic_data ---------------------------------------------------------------------------

def test_digits_split_and_vae_shapes():
    train, test = sd.digits_unit(n_test=100)
    assert train.shape == (1697, 64) and test.shape == (100, 64)
    assert 0.0 <= float(train.min()) and float(train.max()) <= 1.0
    vae = sd.VAE(latent=4, hidden=32)
    e = sd.elbo(vae, test[:7], generator=torch.Generator().manual_seed(0))
    assert e.shape == (7,) and torch.isfinite(e).all() and (e < 0).all()


def test_vae_training_decreases_loss_and_is_deterministic():
    train, _ = sd.digits_unit(n_test=100)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # init only; training draws come from the generator
        vae = sd.VAE(latent=4, hidden=32)
        res = sd.train_vae(vae, train[:256], epochs=6, batch_size=64, generator=torch.Generator().manual_seed(1),
                           progress=False)
        runs.append(res.losses)
    assert runs[0] == runs[1]
    assert runs[0][-1] < runs[0][0]


def test_optimized_elbo_not_below_amortized_and_augment():
    train, test = sd.digits_unit(n_test=100)
    torch.manual_seed(0)
    vae = sd.VAE(latent=4, hidden=32)
    sd.train_vae(vae, train[:256], epochs=3, batch_size=64, progress=False)
    g = torch.Generator().manual_seed(2)
    amort = sd.elbo(vae, test[:20], n_samples=64, generator=g)
    opt = sd.optimized_elbo(vae, test[:20], steps=20, generator=g)
    assert (opt.mean() - amort.mean()) > -0.5  # Monte Carlo noise only; optimisation cannot lose much
    aug = sd.augment_digits(test[:5], generator=torch.Generator().manual_seed(0))
    assert aug.shape == (5, 64) and float(aug.min()) >= 0 and float(aug.max()) <= 1
    assert not torch.equal(aug, test[:5])
    calls = []
    sd.train_vae(vae, lambda epoch, gen: (calls.append(epoch), train[:64])[1], epochs=2, progress=False)
    assert calls == [0, 1]


def test_synthetic_data_bad_input():
    vae = sd.VAE(latent=2, hidden=8)
    with pytest.raises(ValueError, match="x must have shape"):
        sd.elbo(vae, torch.zeros(3, 10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sd.elbo(vae, torch.full((3, 64), 2.0))
    with pytest.raises(TypeError, match="source"):
        sd.train_vae(vae, "digits", epochs=1)
    with pytest.raises(ValueError, match="n_test"):
        sd.digits_unit(n_test=5000)


# ---- merging ----------------------------------------------------------------------------------
