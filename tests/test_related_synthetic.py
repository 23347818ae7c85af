"""Related systems (scorefusion.related): tiny configurations, shapes, determinism, bad input."""

import math

import pytest
import torch

import scorefusion as sf
from scorefusion.related import synthetic_data as sd

pytestmark = pytest.mark.usefixtures("one_thread")


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





def test_vae_init_from_generator():
    a = sd.VAE(latent=3, hidden=16, generator=torch.Generator().manual_seed(4))
    b = sd.VAE(latent=3, hidden=16, generator=torch.Generator().manual_seed(4))
    c = sd.VAE(latent=3, hidden=16, generator=torch.Generator().manual_seed(5))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    bound = 1 / math.sqrt(64)  # nn.Linear's default initialisation range, first encoder layer
    assert float(sa["encoder.0.weight"].abs().max()) <= bound


def test_pool_source_cycles_without_reuse_within_a_pass():
    pool = torch.rand(10, 64, generator=torch.Generator().manual_seed(0))
    source = sd.pool_source(pool, 3)  # k = 3 slices, the tenth image is never used
    assert torch.equal(source(0, None), pool[0:3]) and torch.equal(source(2, None), pool[6:9])
    assert torch.equal(source(3, None), pool[0:3])
    with pytest.raises(ValueError, match="n_per_epoch"):
        sd.pool_source(pool, 11)
    with pytest.raises(ValueError, match=r"pool must lie in \[0, 1\]"):
        sd.pool_source(pool + 2, 3)


def test_generated_pool_shape_range_determinism():
    sde = sf.VESDE(25.0)

    def score(x, t):  # exact score of N(0.5, 0.01 I) noised by the VE SDE
        std = sde.marginal(torch.as_tensor(t, dtype=x.dtype))[1].reshape(-1, 1)
        return -(x - 0.5) / (0.01 + std**2)

    a = sd.generated_pool(score, sde, 37, n_steps=50, batch_size=16, generator=torch.Generator().manual_seed(1))
    b = sd.generated_pool(score, sde, 37, n_steps=50, batch_size=16, generator=torch.Generator().manual_seed(1))
    assert a.shape == (37, 64) and a.dtype == torch.float32 and torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert abs(float(a.mean()) - 0.5) < 0.05  # sampler reaches the Gaussian's mean
    with pytest.raises(ValueError, match="n"):
        sd.generated_pool(score, sde, 0)


def test_vae_gaps_and_optimized_elbo_leave_model_untouched():
    train, test = sd.digits_unit(n_test=100)
    vae = sd.VAE(latent=4, hidden=32, generator=torch.Generator().manual_seed(0))
    sd.train_vae(vae, train[:128], epochs=4, batch_size=64, progress=False)
    for p in vae.decoder.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    gaps = sd.vae_gaps(vae, train[:64], test[:32], n_samples=8, steps=15, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert [p.requires_grad for p in vae.decoder.parameters()] == [False] * 6
    assert all(p.requires_grad for p in vae.encoder.parameters())
    assert math.isclose(gaps.generalization, gaps.train_elbo - gaps.test_elbo)
    assert math.isclose(gaps.amortization, gaps.optimized_test_elbo - gaps.test_elbo)
    assert gaps.amortization > -0.5 and gaps.test_elbo < 0


def test_training_on_a_pool_decreases_loss_and_augment_identity():
    train, _ = sd.digits_unit(n_test=100)
    x = train[:64]
    assert torch.equal(sd.augment_digits(x, max_shift=0, noise=0.0), x)
    with pytest.raises(ValueError, match="max_shift"):
        sd.augment_digits(x, max_shift=-1)
    with pytest.raises(ValueError, match="noise"):
        sd.augment_digits(x, noise=float("nan"))
    vae = sd.VAE(latent=4, hidden=32, generator=torch.Generator().manual_seed(0))
    res = sd.train_vae(vae, sd.pool_source(train[:192], 64), epochs=9, batch_size=32, progress=False,
                       generator=torch.Generator().manual_seed(0))
    assert len(res.losses) == 9 and res.losses[-1] < res.losses[0]
