"""The 28x28 handwriting setting of the digits experiment (lab.digits, size=28): configuration,
data source, cache keys, classifier, the per-auxiliary scoring and the table."""

import dataclasses
import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import scorefusion as sf
from lab import digits as imf
from scorefusion.data import digits, handwriting_pools

pytestmark = pytest.mark.usefixtures("one_thread")


def test_size_28_config():
    cpu, cuda, fast = (imf.scale_config("cpu", size=28), imf.scale_config("cuda", size=28),
                       imf.scale_config("cpu", fast=True, size=28))
    for cfg in (cpu, cuda, fast):
        assert cfg.image_size == 28 and cfg.source == "mnist5k" and cfg.n_levels == 256
        assert cfg.aux_weights == sf.data.DIGITS_AUX_WEIGHTS and cfg.k == 4
    assert cpu.target_ns == cuda.target_ns == (16, 32, 64, 128, 256)
    # the CPU runs the first of the GPU's three seeds, with every per-seed size the same
    assert (cpu.n_seeds, cuda.n_seeds) == (1, 3)
    assert cpu.n_generated // cpu.n_seeds == cuda.n_generated // cuda.n_seeds
    same = {f.name for f in dataclasses.fields(cpu)} - {"device", "n_seeds", "n_generated"}
    assert all(getattr(cpu, f) == getattr(cuda, f) for f in same)
    # official-size U-Net: widths 32, 64, 128 (the official ScoreNet: 32, 64, 128, 256; 1.12 M parameters)
    assert (cpu.base, cpu.channel_mult) == (32, (1, 2, 4))
    assert sum(p.numel() for p in imf.build_unet(cpu, sf.VESDE(25.0)).parameters()) == 1_605_601
    assert fast.base < cpu.base and fast.aux_steps < cpu.aux_steps and fast.test_size < cpu.test_size
    assert imf.scale_config("cpu").n_levels == 17 and imf.scale_config("cpu").source == "sklearn"
    for bad in (16, 8.0, True):
        with pytest.raises(ValueError, match="size"):
            imf.scale_config("cpu", size=bad)
    with pytest.raises(ValueError, match="device"):
        imf.handwriting_config("mps")


def test_draw_images_by_source():
    small = imf.scale_config("cpu", fast=True)
    g = torch.Generator().manual_seed
    # the 8x8 path is data.digits with the arguments the experiment always used: numbers unchanged
    for pool, split in (("aux", "train"), ("target", "train"), ("test", "test")):
        a = imf.draw_images(small, (0.6, 0.4), 32, pool, g(1))
        b = digits(weights=(0.6, 0.4), n=32, split=split, size=small.image_size, generator=g(1))
        assert torch.equal(a.images, b.images) and torch.equal(a.index, b.index)
    big = imf.scale_config("cpu", fast=True, size=28)
    pools = handwriting_pools()
    for pool in ("aux", "target", "test"):
        d = imf.draw_images(big, (0.6, 0.4), 40, pool, g(2))
        assert d.images.shape == (40, 1, 28, 28)
        assert set(d.index.tolist()) <= set(torch.cat([pools[7][pool], pools[9][pool]]).tolist())
    test = imf.target_test(big)
    assert test.images.shape[0] == big.test_size
    assert set(test.index.tolist()).isdisjoint(imf.target_data(big, 16).index.tolist())
    with pytest.raises(ValueError, match="image_size"):
        imf.draw_images(dataclasses.replace(big, image_size=8), (0.5, 0.5), 4, "test", g(0))
    with pytest.raises(ValueError, match="pool"):
        imf.draw_images(big, (0.5, 0.5), 4, "train", g(0))


def test_cache_keys(tmp_path):
    small = imf.scale_config("cpu", fast=True)
    # the 8x8 keys are what they were before the 28x28 setting existed
    assert imf._config_dict(small, role="aux") == {"image_size": 8, "base": 16, "batch_size": 64, "seed": 0,
                                                   "version": 2, "role": "aux"}
    big = imf.scale_config("cpu", size=28)
    key = imf._config_dict(big)
    assert key["source"] == "mnist5k" and key["channel_mult"] == [1, 2, 4]
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.write_bytes(b"first")
    labels.write_bytes(b"labels")
    user = dataclasses.replace(big, source=(str(images), str(labels)))
    first = imf._config_dict(user)["source"]
    assert first == [hashlib.sha256(b"first").hexdigest()[:16], hashlib.sha256(b"labels").hexdigest()[:16]]
    images.write_bytes(b"other")  # another file at the same path: another key, no stale network
    assert imf._config_dict(user)["source"] != first


def test_handwriting_classifier():
    clf, accuracy = imf.proportion_classifier(source="mnist5k")
    assert accuracy >= 0.9  # 7 vs 9, trained on the 480 auxiliary-pool images, scored on the 200 test images
    test = imf.draw_images(imf.scale_config("cpu", fast=True, size=28), (0.6, 0.4), 100, "test",
                           torch.Generator().manual_seed(0))
    assert abs(imf.seven_fraction(clf, test.images) - 0.6) < 0.1


class Constant(nn.Module):
    """Score of N(mean, (s^2 + std_t^2) I): exact for Gaussian data, cheap on 28x28."""

    def __init__(self, sde, mean, s=0.3):
        super().__init__()
        self.sde, self.mean, self.s2 = sde, mean, s * s
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        var = self.s2 + self.sde.marginal(t)[1].to(x).reshape(-1, 1, 1, 1) ** 2
        return (self.mean - x) / var + 0 * self.w


def test_score_each_auxiliary_and_table(monkeypatch):
    sde = sf.VESDE(25.0)
    config = dataclasses.replace(imf.scale_config("cpu", fast=True, size=28), test_size=3, ode_rtol=0.1)
    nets = [Constant(sde, m) for m in (0.1, 0.15, 0.2, 0.3)]
    seen = []

    def fake_aux(cfg, sde_, progress=False):
        seen.append(cfg.seed)
        return nets

    monkeypatch.setattr(imf, "train_auxiliaries", fake_aux)
    test = imf.target_test(config).images
    main = imf.bits_per_image({"main": nets[1]}, test, sde, rtol=config.ode_rtol, seed=16, n_levels=256)["main"]
    rows = [SimpleNamespace(seed=s, n=16, bpd={imf.MAIN_FIT: main.numpy()}) for s in (0, 1)]
    names = imf.score_each_auxiliary(config, rows, sde)
    assert names == [f"auxiliary {w7:.1f}/{w9:.1f} alone" for w7, w9 in config.aux_weights]
    assert seen == [0, 1]  # each row's own seed's auxiliaries
    for row in rows:
        assert all(row.bpd[m].shape == (3,) and np.isfinite(row.bpd[m]).all() for m in names)
        # the same dequantization and probe as the row's model: auxiliary 2 alone is that model
        np.testing.assert_allclose(row.bpd[names[1]], row.bpd[imf.MAIN_FIT], atol=0.05)
    gap, se = imf.paired_gap(rows, 16, names[3], imf.MAIN_FIT)
    table = imf.format_bpd_table(rows, [imf.MAIN_FIT, *names])
    assert f"{rows[0].bpd[names[0]].mean():.3f}" in table
    # header and 5 models; a blank line, the title and header of the gaps, and the 4 gaps
    assert f"{gap:>+10.3f} ± {se:.3f}" in table and len(table.splitlines()) == 6 + 3 + 4
