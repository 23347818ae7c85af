"""The digits fusion experiment's plumbing: device-aware configuration, the model cache, timing, metrics."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

import scorefusion as sf
from lab import digits as imf
from lab import scaling
from scorefusion.cache import cached_model, config_key

pytestmark = pytest.mark.usefixtures("one_thread")  # small nets: one intra-op thread is fastest here


class TinyScore(nn.Module):
    """A small time-conditioned conv net standing in for the U-Net where only plumbing is tested."""

    def __init__(self, sde, width=4):
        super().__init__()
        self.sde = sde
        self.conv = nn.Conv2d(2, width, 3, padding=1)
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x, t):
        tt = t.reshape(-1, 1, 1, 1).expand_as(x)
        h = torch.tanh(self.conv(torch.cat([x, tt], 1)))
        return self.out(h) / self.sde.marginal(t)[1].to(x).reshape(-1, 1, 1, 1)


def tiny_nets(k, seed=0):
    torch.manual_seed(seed)
    sde = sf.VESDE(25.0)
    return [TinyScore(sde).eval() for _ in range(k)], sde


# ---- configuration ---------------------------------------------------------------------


def test_scale_config_by_device():
    cpu, cpu_fast = imf.scale_config("cpu"), imf.scale_config("cpu", fast=True)
    cuda = imf.scale_config("cuda")
    assert cpu.image_size == 8 and cpu.k == 4 and cpu.aux_weights == sf.data.DIGITS_AUX_WEIGHTS
    assert cpu.target_ns == (16, 32, 64, 128, 256) and cpu_fast.target_ns == (16,)
    assert cpu_fast.aux_steps < cpu.aux_steps and cpu_fast.test_size < cpu.test_size
    assert cuda.image_size > cpu.image_size and cuda.k > cpu.k and cuda.batch_size > cpu.batch_size
    assert cuda.device == "cuda" and imf.scale_config(torch.device("cpu")).device == "cpu"
    # rankings over at least 3 training seeds in full runs; at least 500 samples per model and n
    assert cpu.n_seeds >= 3 and cuda.n_seeds >= 3 and cpu_fast.n_seeds == 1
    assert cpu.n_generated >= 500 and cuda.n_generated >= 500
    for cfg in (cpu, cpu_fast, cuda):
        for w7, w9 in cfg.aux_weights:
            assert 0 < w7 < 1 and abs(w7 + w9 - 1) < 1e-9
        # the grey-level ISM fits where the noise is about one grey level (1/16)
        assert 0.02 < float(sf.VESDE(25.0).marginal(torch.tensor(cfg.fit_t))[1]) < 0.15
    with pytest.raises(ValueError, match="device"):
        imf.scale_config("mps")


def test_spread_weights():
    assert imf.spread_weights(4) == sf.data.DIGITS_AUX_WEIGHTS
    eight = imf.spread_weights(8)
    sevens = [w for w, _ in eight]
    assert len(eight) == 8 and sevens == sorted(sevens) and sevens[0] > 0 and sevens[-1] < 1
    assert abs(np.mean(sevens) - 0.5) < 1e-9
    with pytest.raises(ValueError, match="at least 2"):
        imf.spread_weights(1)


# ---- the cache ---------------------------------------------------------------------------


def test_cached_model_hit_miss_and_config_change(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(float(len(calls)))
        return model

    config = {"width": 3, "seed": 0}
    first = cached_model("toy", config, lambda: nn.Linear(3, 1), train)
    assert len(calls) == 1 and (tmp_path / f"toy-{config_key(config)}.pt").exists()
    second = cached_model("toy", dict(config), lambda: nn.Linear(3, 1), train)
    assert len(calls) == 1  # hit: loaded, not retrained
    torch.testing.assert_close(second.weight, first.weight)
    third = cached_model("toy", {"width": 3, "seed": 1}, lambda: nn.Linear(3, 1), train)
    assert len(calls) == 2 and third.weight[0, 0].item() == 2.0  # a changed config retrains
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no partial file


def test_auxiliaries_cached_by_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    trained = []

    def fake_train(model, images, sde, config, steps, lr, seed, progress):
        trained.append((images.shape, seed))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # deterministic in the seed, like real training
            for p in model.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        return model

    monkeypatch.setattr(imf, "build_unet", lambda config, sde, seed=None: TinyScore(sde))
    monkeypatch.setattr(imf, "_train", fake_train)
    config = dataclasses.replace(imf.scale_config("cpu", fast=True), aux_train_size=32)
    sde = sf.VESDE(25.0)
    aux = imf.train_auxiliaries(config, sde)
    assert len(aux) == config.k and len(trained) == config.k
    assert all(shape == (32, 1, 8, 8) for shape, _ in trained)
    assert all(not p.requires_grad for m in aux for p in m.parameters())
    again = imf.train_auxiliaries(config, sde)
    assert len(trained) == config.k  # every auxiliary came from the cache
    for a, b in zip(aux, again):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)
    imf.train_auxiliaries(dataclasses.replace(config, aux_steps=config.aux_steps + 1), sde)
    assert len(trained) == 2 * config.k  # a changed config retrains all of them
    # the baselines are cached too
    imf.train_scratch(config, sde, 16)
    imf.train_scratch(config, sde, 16)
    assert len(trained) == 2 * config.k + 1
    # fine-tuning: every setting of the grid is trained on the fitting split and scored on the held-out
    # images with the auxiliary itself (0 steps); the chosen one is then run on all n images, or none
    tuned, choice = imf.select_finetune(config, sde, aux, 16, start=1)
    grid = imf.finetune_grid(config)
    ran = len(grid) + (choice.steps > 0)
    assert len(trained) == 2 * config.k + 1 + ran
    assert trained[-ran][0] == (12, 1, 8, 8) and (choice.steps == 0 or trained[-1][0] == (16, 1, 8, 8))
    assert choice.start == 1 and choice.n_val == 4 and set(choice.val_loss) == {(None, 0), *grid}
    assert choice.val_loss[(choice.lr, choice.steps)] == min(choice.val_loss.values())
    assert not tuned.training
    if choice.steps == 0:
        assert tuned is aux[1]
    _, x_val = imf.held_out_split(config, 16)
    alone = imf.objective_per_model(config, [aux[1]], x_val, sde, seed=config.seed * 1000 + 950 + 16)
    assert choice.val_loss[(None, 0)] == pytest.approx(float(alone[0]), rel=1e-9)
    again, same = imf.select_finetune(config, sde, aux, 16, start=1)
    assert len(trained) == 2 * config.k + 1 + ran and same == choice  # all from the cache
    with pytest.raises(ValueError, match="start"):
        imf.select_finetune(config, sde, aux, 16, start=config.k)


# ---- batched vs looped fused score -------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4])
def test_batched_fused_score_matches_loop(k):
    nets, _ = tiny_nets(k)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 1, 8, 8, generator=g)
    t = torch.rand(16, generator=g) * 0.9 + 0.05
    lam = torch.distributions.Dirichlet(torch.ones(k)).sample().double()
    fused = sf.FusedScore(nets, lam, vectorize=True)
    assert fused.batched
    with torch.no_grad():
        torch.testing.assert_close(fused(x, t), scaling.loop_fused_score(nets, lam, x, t), rtol=1e-5, atol=1e-5)
    timing = scaling.time_fused_vs_loop(nets, x, t, repeats=3, warmup=1)
    assert timing.k == k and timing.batch == 16 and timing.max_abs_diff < 1e-4
    assert timing.batched_s > 0 and timing.loop_s > 0 and timing.speedup == timing.loop_s / timing.batched_s
    with pytest.raises(ValueError, match="one weight per network"):
        scaling.loop_fused_score(nets, lam[:-1], x, t)


# ---- metrics -----------------------------------------------------------------------------


def test_proportion_classifier_and_seven_fraction():
    clf, accuracy = imf.proportion_classifier()
    assert accuracy >= 0.9
    test = sf.data.digits(weights=(0.6, 0.4), n=100, split="test", generator=torch.Generator().manual_seed(0))
    share = imf.seven_fraction(clf, test.images)
    assert abs(share - 0.6) <= 0.1  # the classifier reads the test set's true share within its error
    sevens = sf.data.digits(weights=(1.0, 0.0), n=40, split="test", generator=torch.Generator().manual_seed(1))
    assert imf.seven_fraction(clf, sevens.images) >= 0.9
    clf16, acc16 = imf.proportion_classifier(image_size=16)
    assert acc16 >= 0.9 and clf16.coef_.shape == (1, 256)


def test_dsm_per_model_uses_common_draws():
    nets, sde = tiny_nets(3)
    x = imf.target_data(imf.scale_config("cpu", fast=True), 16).images
    a = imf.dsm_per_model(nets, x, sde, n_draws=2, seed=3)
    b = imf.dsm_per_model(nets, x, sde, n_draws=2, seed=3)
    assert a.shape == (3,) and np.array_equal(a, b) and np.isfinite(a).all()
    same = imf.dsm_per_model([nets[0], nets[0]], x, sde, n_draws=2, seed=3)
    assert same[0] == same[1]


def test_target_sets_disjoint_from_test():
    config = imf.scale_config("cpu")
    test_rows = set(imf.target_test(config).index.tolist())
    assert len(imf.target_test(config)) == config.test_size
    for n in config.target_ns:
        data = imf.target_data(config, n)
        assert len(data) == n and not test_rows & set(data.index.tolist())
        assert abs(int((data.labels == 7).sum()) - 0.6 * n) <= 0.5


def test_bits_per_dim_is_seeded_and_below_uniform_for_a_fitted_gaussian():
    # a score that knows the data: the exact score of a Gaussian fitted to the test images' pixels
    config = imf.scale_config("cpu", fast=True)
    images = imf.target_test(config).images[:2]
    sde = sf.VESDE(25.0)
    flat = imf.target_data(config, 64).images.flatten(1).double()
    cov = torch.cov(flat.T) + 1e-2 * torch.eye(64, dtype=torch.float64)
    exact = sf.AnalyticScore(sf.Gaussian(flat.mean(0), cov), sde)

    def score(x, t):
        return exact(x.flatten(1).double(), t).reshape(x.shape).to(x.dtype)

    a = imf.bits_per_dim(score, images, sde, rtol=1e-3, seed=1)
    b = imf.bits_per_dim(score, images, sde, rtol=1e-3, seed=1)
    c = imf.bits_per_dim(score, images, sde, rtol=1e-3, seed=2)
    assert a == b and a != c  # the dequantization noise and probes come from the seed
    assert 0.0 < a < np.log2(17)  # a fitted Gaussian beats guessing the 17 grey levels uniformly


def test_build_unet_seeded_init_is_reproducible_and_leaves_global_rng():
    config = imf.scale_config("cpu", fast=True)
    state = torch.random.get_rng_state()
    a, b = imf.build_unet(config, sf.VESDE(), seed=3), imf.build_unet(config, sf.VESDE(), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = imf.build_unet(config, sf.VESDE(), seed=4)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_held_out_split_and_finetune_grid():
    config = imf.scale_config("cpu", fast=True)
    for n in (16, 64):
        x_fit, x_val = imf.held_out_split(config, n)
        assert x_val.shape[0] == max(2, n // 4) and x_fit.shape[0] + x_val.shape[0] == n
        together = torch.cat([x_fit, x_val]).flatten(1)
        target = imf.target_data(config, n).images.flatten(1)
        # the two parts are the n target images, split without overlap
        assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, target.tolist()))
    with pytest.raises(ValueError, match="n"):
        imf.held_out_split(config, 2)
    full = imf.scale_config("cpu")
    assert imf.finetune_grid(full) == [(full.finetune_lr / 4, 50), (full.finetune_lr / 4, 200),
                                       (full.finetune_lr, 50), (full.finetune_lr, 200)]


def test_control_target_and_implied_share():
    config = imf.scale_config("cpu", fast=True)
    control = imf.target_data(config, 40, weights=imf.CONTROL_WEIGHTS)
    assert int((control.labels == 7).sum()) == 12  # 0.3 of 40
    weights = sf.data.DIGITS_AUX_WEIGHTS
    assert imf.implied_share([0.25, 0.25, 0.25, 0.25], weights) == pytest.approx(0.5, abs=1e-12)
    assert imf.implied_share([0, 0, 1, 0], weights) == pytest.approx(0.7, abs=1e-12)
    from theory_checks.barycenter_class_share import predicted_share
    lam = (0.182, 0.328, 0.284, 0.206)
    assert imf.implied_share(lam, weights) == pytest.approx(predicted_share(lam), abs=1e-12)


def test_fit_lambdas_and_objective_per_model():
    nets, sde = tiny_nets(4)
    config = imf.scale_config("cpu", fast=True)
    x = imf.target_data(config, 16).images
    fits = imf.fit_lambdas(config, nets, x, sde, seed=3, fits=imf.FITS + ("sgd",))
    assert set(fits) == set(imf.FITS) | {"sgd"}
    for name, fit in fits.items():
        if name == "schedule":
            assert isinstance(fit.schedule, sf.schedule.WeightSchedule) and fit.schedule.n_bins == config.schedule_bins
        else:
            assert fit.lam.shape == (4,) and abs(float(fit.lam.sum()) - 1) < 1e-6 and (fit.lam >= -1e-9).all()
        assert fit.seconds >= 0
    # the DSM fit over all times is the official loss: each model's objective is its DSM loss on the same draws
    values = imf.objective_per_model(config, nets[:2], x, sde, seed=5, fit="dsm_all_t")
    data = x.repeat_interleave(imf.VAL_DRAWS, dim=0)
    with torch.no_grad():
        for net, value in zip(nets[:2], values):
            g = torch.Generator().manual_seed(5)
            loss = sf.losses.dsm_loss(net, data, sde, generator=g, t_range=(imf.OFFICIAL_IMAGE_T_MIN, sde.T))
            assert value == pytest.approx(float(loss), rel=1e-5)
    # the main fit's objective: the same model twice scores the same, a different one differently
    main = imf.objective_per_model(config, [nets[0], nets[0], nets[1]], x, sde, seed=5)
    assert main[0] == pytest.approx(main[1], rel=1e-12) and main[0] != main[2]
    with pytest.raises(ValueError, match="fit"):
        imf.objective_per_model(config, nets, x, sde, seed=5, fit="schedule")


def test_bits_per_image_is_paired_and_matches_one_model():
    nets, sde = tiny_nets(3)
    config = imf.scale_config("cpu", fast=True)
    images = imf.target_test(config).images[:4]
    lam = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    fused = sf.FusedScore(nets, lam)
    corner = sf.FusedScore(nets, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    models = {"fused": fused, "again": sf.FusedScore(nets, lam), "corner": corner, "net1": nets[1]}
    out = imf.bits_per_image(models, images, sde, rtol=1e-3, seed=7)
    assert set(out) == set(models) and all(v.shape == (4,) and v.dtype == torch.float64 for v in out.values())
    # one dequantization and one probe for every model: the same model in two blocks gives the same numbers
    assert torch.equal(out["fused"], out["again"])
    torch.testing.assert_close(out["corner"], out["net1"], rtol=1e-5, atol=1e-5)
    # one model alone: exactly the library's bits/dim with the same seed
    alone = sf.sampling.bits_per_dim(fused, images, sde, n_levels=imf.N_LEVELS, rtol=1e-3, atol=1e-3,
                                     generator=torch.Generator().manual_seed(7))
    assert imf.bits_per_dim(fused, images, sde, rtol=1e-3, seed=7) == float(alone.mean())
    # stacked with others, within the solver's tolerance of the separate solve
    torch.testing.assert_close(out["fused"], alone, rtol=0, atol=2e-2)
    with pytest.raises(ValueError, match="images"):
        imf.bits_per_image(models, images + 0.01, sde, rtol=1e-3)
    with pytest.raises(TypeError, match="models"):
        imf.bits_per_image([fused], images, sde, rtol=1e-3)


def test_sample_many_blocks():
    nets, sde = tiny_nets(2)
    config = dataclasses.replace(imf.scale_config("cpu", fast=True), sample_steps=5)
    models = {"a": sf.FusedScore(nets, torch.tensor([0.5, 0.5], dtype=torch.float64)), "b": nets[0]}
    out = imf.sample_many(models, config, sde, 3, seed=1)
    assert list(out) == ["a", "b"] and all(v.shape == (3, 1, 8, 8) and torch.isfinite(v).all() for v in out.values())
    again = imf.sample_many(models, config, sde, 3, seed=1)
    assert all(torch.equal(out[k], again[k]) for k in out)
    with pytest.raises(TypeError, match="models"):
        imf.sample_many([nets[0]], config, sde, 3)


def _row(seed, n, bpd, share, n_samples=100):
    return imf.ImageFusionRow(seed=seed, n=n, lam={}, control_lam={}, bpd=bpd, share=share, n_samples=n_samples,
                              aux_share=(), bound={}, finetune=None, seconds_fit={}, examples={})


def test_paired_gap_and_share_estimate():
    a, b = np.array([1.0, 2.0, 3.0, 6.0]), np.array([0.5, 1.5, 2.0, 5.0])
    one = [_row(0, 16, {"a": a, "b": b}, {"a": 0.6})]
    d = a - b
    assert imf.paired_gap(one, 16, "a", "b") == pytest.approx((d.mean(), d.std(ddof=1) / 2))
    # a second seed adds the spread of the per-seed means (here 0.75 and 0.25: sd 0.354, se 0.25)
    two = one + [_row(1, 16, {"a": a, "b": a - 0.25}, {"a": 0.5})]
    mean, se = imf.paired_gap(two, 16, "a", "b")
    per_image = (d + 0.25) / 2
    assert mean == pytest.approx(0.5) and se == pytest.approx(math.hypot(per_image.std(ddof=1) / 2, 0.25))
    assert imf.share_estimate(one, 16, "a") == pytest.approx((0.6, math.sqrt(0.24 / 100)))
    p, se = imf.share_estimate(two, 16, "a")
    assert p == pytest.approx(0.55) and se == pytest.approx(math.sqrt(0.55 * 0.45 / 200 + 0.05**2))
    with pytest.raises(ValueError, match="n"):
        imf.paired_gap(one, 32, "a", "b")
