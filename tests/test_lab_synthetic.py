"""lab.synthetic (chapter 08): mixture counts, VAEs and target U-Nets keyed by regime and training seed."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import scorefusion as sf
from lab import digits as imf
from lab import synthetic as lab_sd
from scorefusion.related import synthetic_data as sd

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mixture_counts_largest_remainders():
    assert lab_sd.mixture_counts([0.5, 0.25, 0.25], 4).tolist() == [2, 1, 1]
    # 10 * (0.33, 0.33, 0.34) = (3.3, 3.3, 3.4): floors sum to 9, the largest remainder (0.4) gets the tenth
    assert lab_sd.mixture_counts([0.33, 0.33, 0.34], 10).tolist() == [3, 3, 4]
    lam = np.random.default_rng(0).dirichlet(np.ones(5))
    counts = lab_sd.mixture_counts(lam, 257)
    assert counts.sum() == 257 and (np.abs(counts - 257 * lam) < 1).all()


@pytest.mark.parametrize("lam, m, name", [([0.5, 0.6], 4, "lam"), ([-0.5, 1.5], 4, "lam"), ([], 4, "lam"),
                                          ([0.5, 0.5], 0, "m"), ([0.5, 0.5], 2.0, "m")])
def test_mixture_counts_bad_input(lam, m, name):
    with pytest.raises(ValueError, match=name):
        lab_sd.mixture_counts(lam, m)


def test_trained_vae_shares_initial_weights_within_a_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    starts = []
    real_train = sd.train_vae

    def recording_train(vae, source, **kwargs):
        starts.append([p.detach().clone() for p in vae.parameters()])
        return real_train(vae, source, **kwargs)

    monkeypatch.setattr(sd, "train_vae", recording_train)
    x = sd.digits_unit(n_test=100)[1][:20]
    kw = {"steps": 2, "batch": 10, "n_train": 20}
    a = lab_sd.trained_vae("normal", x, 0, **kw)
    lab_sd.trained_vae("other", x.flip(0), 0, **kw)
    lab_sd.trained_vae("normal", x, 1, **kw)
    assert len(starts) == 3
    assert all(torch.equal(p, q) for p, q in zip(starts[0], starts[1]))  # same seed: same start, other regime
    assert not all(torch.equal(p, q) for p, q in zip(starts[0], starts[2]))  # another seed: another start
    again = lab_sd.trained_vae("normal", x, 0, **kw)
    assert len(starts) == 3  # from the cache
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), again.parameters()))
    with pytest.raises(ValueError, match="steps"):
        lab_sd.trained_vae("normal", x, 0, steps=0, batch=10, n_train=20)


class TinyScore(nn.Module):
    def __init__(self, sde):
        super().__init__()
        self.sde = sde
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.out = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x, t):
        h = torch.tanh(self.conv(torch.cat([x, t.reshape(-1, 1, 1, 1).expand_as(x)], 1)))
        return self.out(h) / self.sde.marginal(t)[1].to(x).reshape(-1, 1, 1, 1)


def test_train_images_model_one_recipe_for_every_role(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))

    def build(config, sde, seed=None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TinyScore(sde)

    monkeypatch.setattr(imf, "build_unet", build)
    config = dataclasses.replace(imf.scale_config("cpu", fast=True), batch_size=4)
    sde = sf.VESDE(25.0)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    made = []

    def images():
        made.append(1)
        return x

    gen = lab_sd.train_images_model("generated", images, config, sde, 2, 0, {"n": 8})
    scratch = lab_sd.train_images_model("scratch", x, config, sde, 2, 0, {"n": 8})
    assert made == [1] and all(not p.requires_grad for p in gen.parameters())
    # same data, steps, initial weights and training generator: the two roles give the same network
    assert all(torch.equal(p, q) for p, q in zip(gen.parameters(), scratch.parameters()))
    other = lab_sd.train_images_model("scratch", x, config, sde, 2, 1, {"n": 8})
    assert not all(torch.equal(p, q) for p, q in zip(other.parameters(), scratch.parameters()))
    lab_sd.train_images_model("generated", images, config, sde, 2, 0, {"n": 8})
    assert made == [1]  # a cache hit never makes the images
    with pytest.raises(ValueError, match="steps"):
        lab_sd.train_images_model("scratch", x, config, sde, 0, 0, {"n": 8})
