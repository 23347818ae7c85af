"""The official geometry of the 1-D preset, the official SGD recipe, the table of official numbers (lab.official)
and the helpers of lab.paper_1d behind chapter 03 and the claim official_geometry_low_data."""

import math

import numpy as np
import pytest
import torch

import scorefusion as sf
from lab import official
from lab import paper_1d as ex
from scorefusion.data import paper_1d


def gen(seed):
    return torch.Generator().manual_seed(seed)


# -- the standardised preset --------------------------------------------------------------------------------

def _moments(mixture):
    w, m, v = mixture.weights, mixture.means[:, 0], mixture.covs[:, 0, 0]
    mean = float((w * m).sum())
    return mean, float((w * (v + m**2)).sum()) - mean**2


def test_standardized_preset_has_zero_mean_unit_variance_and_maps_back():
    raw, std = paper_1d(), paper_1d(standardize=True)
    assert not raw.standardized and raw.loc == 0.0 and raw.scale == 1.0
    assert std.standardized and abs(std.loc + 1.2) < 1e-12 and abs(std.scale - math.sqrt(35.2)) < 1e-12
    for mixture in [std.target, *std.aux]:
        mean, var = _moments(mixture)
        assert abs(mean) < 1e-12 and abs(var - 1.0) < 1e-12
    assert torch.allclose(std.to_raw(std.target.means), raw.target.means, atol=1e-12)
    assert torch.allclose(std.target.covs * std.scale**2, raw.target.covs, atol=1e-12)
    # each auxiliary by its own moments, not the target's: aux 1 (mean 3.5, var 43.25) has modes at +-6.5/sqrt(43.25)
    assert torch.allclose(std.aux[0].means[:, 0], torch.tensor([-6.5, 6.5], dtype=torch.float64) / math.sqrt(43.25))


def test_standardized_preset_matches_standardised_samples():
    x = paper_1d().aux[1].sample(200_000, generator=gen(0))
    z = (x - x.mean()) / x.std()
    # TV between the standardised samples and the standardised density: only the histogram's own noise
    assert sf.metrics.tv_histogram(z, paper_1d(standardize=True).aux[1], bins=100) < 0.02


def test_paper_1d_rejects_non_bool():
    with pytest.raises(TypeError, match="standardize"):
        paper_1d(standardize="yes")


def test_family_floor_of_each_geometry():
    # the numbers of the issue, by quadrature: TV 0.178 at lam_1 = 0.63 standardised, 0.566 raw; raw W1 1.69 at 0.056
    std = ex.family_floor("standardized", n_lam=21)
    raw = ex.family_floor("raw", n_lam=21)
    tv, lam = std.tv_min
    assert abs(tv - 0.178) < 0.003 and abs(lam - 0.63) < 0.015 and tv <= std.tv.min()
    assert abs(std.official[1] - 0.190) < 0.003
    tv, lam = raw.tv_min
    assert abs(tv - 0.566) < 0.003 and abs(lam - 0.09) < 0.015
    w1, lam = raw.w1_min
    assert abs(w1 - 1.689) < 0.005 and abs(lam - 0.056) < 0.005
    # the ends of the family are the auxiliaries: aux 2 alone is 2.6 from the target in raw W1
    assert abs(raw.w1[0] - 2.597) < 0.01 and abs(raw.w1[-1] - 4.7) < 0.01 and len(raw.lam1) == 21
    # standardised, aux 2 alone mapped back with the target's moments is closer (W1 in raw units in both)
    assert abs(std.w1[0] - 1.758) < 0.01
    with pytest.raises(ValueError, match="geometry"):
        ex.family_floor("log")


def test_density_distances_are_zero_for_the_target_and_scale_w1():
    for standardize in (False, True):
        preset = paper_1d(standardize=standardize)
        w1, tv = ex.density_distances(preset.target, preset)
        assert w1 < 1e-6 and tv < 1e-9
    raw, std = paper_1d(), paper_1d(standardize=True)
    w1_raw, tv_raw = ex.density_distances(raw.aux[1], raw)
    assert abs(w1_raw - 2.597) < 0.01 and 0.5 < tv_raw < 0.7  # aux 2 alone against the target
    # standardised aux 2 is a different density once mapped back; its W1 is reported in raw units (x scale)
    w1_std, tv_std = ex.density_distances(std.aux[1], std)
    xs = torch.linspace(-5, 5, 20001, dtype=torch.float64)[:, None]
    p, q = std.target.log_prob(xs).exp(), std.aux[1].log_prob(xs).exp()
    w1_unit = float(torch.trapezoid((torch.cumulative_trapezoid(p - q, xs[:, 0])).abs(), xs[1:, 0]))
    assert abs(w1_std - std.scale * w1_unit) < 1e-3 and abs(w1_std - 1.758) < 0.01 and 0.5 < tv_std < 0.6


def test_standardize_samples():
    x = paper_1d().target.sample(500, generator=gen(1))
    z, loc, scale = ex.standardize_samples(x)
    assert abs(float(z.mean())) < 1e-12 and abs(float(z.std()) - 1.0) < 1e-12
    assert torch.allclose(loc + scale * z, x, atol=1e-12)
    with pytest.raises(ValueError, match="x must"):
        ex.standardize_samples(x[:1])
    with pytest.raises(ValueError, match="constant"):
        ex.standardize_samples(torch.ones(5, 1, dtype=torch.float64))


def test_crossing_n():
    def row(n, fusion, scratch):
        return ex.Paper1DRow(n, "raw", {}, (0.5, 0.5), {"ism": fusion, "scratch": scratch}, {}, 0.0, 1.0)

    assert ex.crossing_n([row(64, 1.0, 1.5), row(32, 1.0, 2.0), row(128, 1.0, 0.9)]) == 128
    assert ex.crossing_n([row(32, 1.0, 2.0)]) is None
    assert ex.crossing_n([row(32, 3.0, 2.0)]) == 32


# -- the official SGD recipe --------------------------------------------------------------------------------

def _exact_setup(n=300, seed=2):
    preset, sde = paper_1d(standardize=True), sf.VESDE(25.0)
    aux = [sf.AnalyticScore(d, sde) for d in preset.aux]
    return aux, preset.target.sample(n, generator=gen(seed)), sde, preset


def test_sgd_starts_from_seeded_randn_logits():
    aux, x, sde, _ = _exact_setup()
    a = sf.fit_weights(aux, x, sde, method="sgd", epochs=1, lr=1e-12, generator=gen(3))
    b = sf.fit_weights(aux, x, sde, method="sgd", epochs=1, lr=1e-12, generator=gen(3))
    c = sf.fit_weights(aux, x, sde, method="sgd", epochs=1, lr=1e-12, generator=gen(4))
    assert torch.equal(a.lam, b.lam)
    # lr ~ 0: the weights are softmax of the first draw of the generator, not uniform
    assert torch.allclose(a.lam, torch.softmax(torch.randn(2, generator=gen(3), dtype=torch.float64), 0), atol=1e-9)
    assert not torch.allclose(a.lam, c.lam, atol=1e-3)


def test_sgd_default_batch_is_min_n_256():
    aux, x, sde, _ = _exact_setup(n=300)
    small = x[:100]
    default = sf.fit_weights(aux, small, sde, method="sgd", epochs=2, generator=gen(5))
    explicit = sf.fit_weights(aux, small, sde, method="sgd", epochs=2, batch_size=100, generator=gen(5))
    other = sf.fit_weights(aux, small, sde, method="sgd", epochs=2, batch_size=50, generator=gen(5))
    assert torch.equal(default.lam, explicit.lam) and not torch.equal(default.lam, other.lam)
    default = sf.fit_weights(aux, x, sde, method="sgd", epochs=2, generator=gen(5))
    explicit = sf.fit_weights(aux, x, sde, method="sgd", epochs=2, batch_size=256, generator=gen(5))
    assert torch.equal(default.lam, explicit.lam)


def test_sgd_keeps_the_best_validation_epoch():
    aux, x, sde, preset = _exact_setup()
    x_val = preset.target.sample(75, generator=gen(6))
    full = sf.fit_weights(aux, x, sde, method="sgd", epochs=12, x_val=x_val, generator=gen(7))
    assert len(full.val_history) == 12 and len(full.history) == 12
    best = int(np.argmin(full.val_history))
    assert best < 11  # this seed's best epoch is not the last, so "best kept" differs from "last kept"
    assert full.loss == min(full.val_history)
    # a run stopped after the best epoch ends there: its last weights are the weights the full run returns
    cut = sf.fit_weights(aux, x, sde, method="sgd", epochs=best + 1, x_val=x_val, generator=gen(7))
    assert cut.val_history == full.val_history[:best + 1]
    assert torch.equal(cut.lam, full.lam)
    last = sf.fit_weights(aux, x, sde, method="sgd", epochs=12, generator=gen(7))
    assert last.val_history == [] and last.loss == last.history[-1]


def test_sgd_validation_shape_is_checked():
    aux, x, sde, _ = _exact_setup(n=50)
    with pytest.raises(ValueError, match="x_val"):
        sf.fit_weights(aux, x, sde, method="sgd", epochs=1, x_val=torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="x_val"):
        sf.fit_weights(aux, x, sde, method="sgd", epochs=1, x_val=[[0.0]])


# -- the official numbers -------------------------------------------------------------------------------------

def test_official_table_is_consistent():
    keys = [e.key for e in official.OFFICIAL]
    assert len(keys) == len(set(keys))
    assert all(e.file and e.where and e.measures for e in official.OFFICIAL)
    assert official.OFFICIAL_LAM_1D == (0.5781, 0.4219) and abs(sum(official.OFFICIAL_LAM_1D) - 1) < 1e-12
    rows = [e for e in official.OFFICIAL if e.key.startswith("emnist.lam.")]
    assert [int(e.key.rsplit("n", 1)[1]) for e in rows] == [64, 128, 256, 512, 1024, 4096, 16384]
    shares = [official.implied_share(e.value, [0.1, 0.3, 0.7, 0.9]) for e in rows]
    assert all(abs(sum(e.value) - 1) < 0.002 for e in rows) and all(0.48 < s < 0.53 for s in shares)
    assert official.official("fusion.t_range").value == sf.fusion.PAPER_T_RANGE
    with pytest.raises(ValueError, match="key"):
        official.official("no.such.key")
    assert "1d.lam" in official.format_official() and len(official.format_official(["1d.lam"]).splitlines()) == 2


def test_official_bits_per_dim_offset():
    assert abs(official.BPD_OFFSET - 1.6985) < 1e-4
    assert abs(official.corrected_bpd(official.official("emnist.bpd_fusion").value) - 2.833) < 1e-3
    assert abs(official.corrected_bpd(official.official("emnist.bpd_finetune").value) - 3.117) < 1e-3
    assert abs(official.corrected_bpd(official.official("emnist.bpd_undertrained").value) - 6.580) < 1e-3
    # the Jacobian: the density of y = 0.3081 x + 0.1307 is that of x divided by 0.3081 per pixel
    x = torch.tensor([0.3], dtype=torch.float64)
    log_px = torch.distributions.Normal(0.0, 1.0).log_prob(x)
    log_py = log_px - math.log(official.MNIST_STD)
    assert abs(float(-log_px / math.log(2)) - float(-log_py / math.log(2)) - official.BPD_OFFSET) < 1e-12
    with pytest.raises(ValueError, match="official_bpd"):
        official.corrected_bpd(float("nan"))


# -- the four fits of lambda with trained networks (chapter 03, section 7) -----------------------------------

TINY = ex.Paper1DConfig(target_ns=(64,), aux_n=256, aux_steps=20, hidden=16, depth=2, ema=0.9, n_samples=300,
                        sample_steps=20, n_test=400)


def test_auxiliary_networks_are_cached_per_training_seed(monkeypatch, tmp_path):
    """A second call loads the same weights from the cache; another training seed gives other networks."""
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    sde = sf.VESDE(25.0)
    nets = ex.auxiliary_networks(TINY, sde, "standardized")
    again = ex.auxiliary_networks(TINY, sde, "standardized")
    assert len(nets) == 2 and all(torch.equal(p, q) for a, b in zip(nets, again)
                                  for p, q in zip(a.parameters(), b.parameters()))
    other = ex.auxiliary_networks(ex.Paper1DConfig(**{**TINY.__dict__, "seed": 1}), sde, "standardized")
    assert not torch.equal(next(other[0].parameters()), next(nets[0].parameters()))
    with pytest.raises(ValueError, match="geometry"):
        ex.auxiliary_networks(TINY, sde, "log")


def test_four_fits_networks_rows(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    sde = sf.VESDE(25.0)
    rows, samples = ex.four_fits_networks(TINY, sde, "raw", 64)
    assert [r.fit for r in rows] == ["a", "b", "c", "d", "exact_c", "oracle"]
    assert isinstance(rows[3].lam, sf.WeightSchedule) and rows[-1].lam is None and rows[-1].data_term == 0.0
    for r in rows:
        x = samples[r.fit]
        assert x.shape == (TINY.n_samples, 1) and r.geometry == "raw" and r.seed == TINY.seed
        assert r.left == pytest.approx(float((x < 0).double().mean()))
        assert r.left_se == pytest.approx(math.sqrt(r.left * (1 - r.left) / TINY.n_samples))
        assert r.w1 == pytest.approx(sf.metrics.w1_distance(x, samples["target"]))
        assert r.data_term >= 0.0
    assert abs(float(rows[4].lam.sum()) - 1) < 1e-9 and float(rows[4].lam.min()) >= 0  # exact scores' fit (c)
    if torch.equal(rows[0].lam, rows[1].lam):  # equal weights are sampled once
        assert samples["a"] is samples["b"] and rows[0].data_term == rows[1].data_term
    with pytest.raises(ValueError, match="n must"):
        ex.four_fits_networks(TINY, sde, "raw", 1)
    with pytest.raises(ValueError, match="geometry"):
        ex.four_fits_networks(TINY, sde, "log", 64)
