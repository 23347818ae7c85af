"""lab.merging and lab.summary (chapter 09's experiment): domains, equal step budgets, the cached
pipeline on tiny configurations, evaluation, digits helpers, summaries over seeds."""

import math

import numpy as np
import pytest
import torch

import scorefusion as sf
from lab import merging as lm
from lab.summary import beyond, mean_se, paired_difference
from scorefusion.related import merging as mg

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = lm.Merge2DConfig(n=64, source_epochs=2, rooting_epochs=3, finetune_epochs=1, batch_size=32, sampler_steps=5,
                        n_eval=40, n_tv=8, n_fit=32, hidden=8, depth=1, embed_dim=4)


def test_domains_2d():
    domains = lm.domains_2d()
    assert len(domains) == len(lm.DOMAIN_NAMES) == 3
    assert [d.means.shape[0] for d in domains] == [6, 3, 2]
    for d in domains:
        assert torch.allclose(d.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(domains[0].means.norm(dim=1), torch.full((6,), 2.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="std"):
        lm.isotropic_mixture([[0.0, 0.0]], 0.0)
    with pytest.raises(ValueError, match="means"):
        lm.isotropic_mixture([0.0, 0.0], 1.0)


def test_step_budget_gives_every_method_the_same_steps():
    b = lm.step_budget(4096, 3, 256, 30, 20)
    assert (b.rooting_steps, b.finetune_steps, b.baseline_epochs) == (960, 960, 40)
    assert b.total == b.baseline_steps == 1920
    fast = lm.Merge2DConfig.fast()
    b = lm.step_budget(fast.n, 3, fast.batch_size, fast.rooting_epochs, fast.finetune_epochs)
    assert b.total == b.baseline_steps
    digits = lm.step_budget(512, 2, 64, 30, 10)  # one rooted copy of two domains
    assert (digits.rooting_steps, digits.finetune_steps, digits.baseline_epochs) == (240, 160, 25)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        lm.step_budget(100, 3, 32, 3, 1)
    with pytest.raises(ValueError, match="n_domains"):
        lm.step_budget(64, 3, 32, 2, 1)
    with pytest.raises(ValueError, match="rooting_epochs"):
        lm.step_budget(64, 3, 32, 0, 1)


def test_pipeline_is_cached_deterministic_and_paired(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    sde, domains = sf.VPSDE(), lm.domains_2d()
    sources = lm.train_sources(domains, TINY, sde, 0)
    assert len(sources) == 3 and len(list(tmp_path.glob("merge2d-source-*.pt"))) == 3
    again = lm.train_sources(domains, TINY, sde, 0)  # from the cache
    assert all(torch.equal(p, q) for p, q in zip(sources[1].parameters(), again[1].parameters()))
    other_seed = lm.train_sources(domains, TINY, sde, 1)
    assert not torch.equal(sources[1].net[0].weight, other_seed[1].net[0].weight)

    x, y = lm.generated_set(sources, TINY, sde, 0)
    assert x.shape == (3 * TINY.n, 2) and torch.equal(torch.bincount(y), torch.full((3,), TINY.n))
    rooted = lm.root_copies(sources, (x, y), TINY, sde, 0)
    assert rooted[0] is sources[0]
    for k in (1, 2):
        assert lm.weight_distance(rooted[k], sources[0]) < lm.weight_distance(sources[k], sources[0])
    assert lm.weight_distance(sources[0], sources[0]) == 0.0

    budget = lm.step_budget(TINY.n, 3, TINY.batch_size, TINY.rooting_epochs, TINY.finetune_epochs)
    naive = mg.average_weights(sources)
    tuned = lm.finetuned("naive", naive, sources, (x, y), TINY, sde, 0, budget.baseline_epochs)
    assert not torch.equal(tuned.net[0].weight, naive.net[0].weight)
    assert torch.equal(lm.finetuned("naive", naive, sources, (x, y), TINY, sde, 0, budget.baseline_epochs)
                       .net[0].weight, tuned.net[0].weight)

    score = mg.DomainScore(tuned, 2)
    first = lm.evaluate_domain(score, domains[2], TINY, sde, 0, 2)
    second = lm.evaluate_domain(score, domains[2], TINY, sde, 0, 2)
    assert first.samples.shape == (TINY.n_eval, 2) and math.isfinite(first.w1) and 0 <= first.tv <= 1
    assert first.w1 == second.w1 and first.tv == second.tv  # common random numbers per (seed, k)
    assert lm.w1_floor(domains[2], TINY, 0, 2) > 0


def test_weight_distance_checks_shapes():
    a = lm.build_network(TINY, sf.VPSDE(), 3, init_seed=0)
    b = lm.build_network(TINY, sf.VPSDE(), 2, init_seed=0)
    assert lm.weight_distance(lm.build_network(TINY, sf.VPSDE(), 3, init_seed=1), a) > 0
    with pytest.raises(ValueError, match="parameters"):
        lm.weight_distance(a, b)


def test_time_sampler_is_positive():
    score = mg.DomainScore(lm.build_network(TINY, sf.VPSDE(), 3, init_seed=0), 0)
    assert lm.time_sampler(score, sf.VPSDE(), n=10, n_steps=3, repeats=1) > 0
    with pytest.raises(ValueError, match="repeats"):
        lm.time_sampler(score, sf.VPSDE(), repeats=0)


def test_digit_helpers():
    config = lm.MergeDigitsConfig.fast()
    train, test = lm.digit_sets(config)
    assert [t.shape for t in train] == [(lm.TRAIN_PER_CLASS, 64)] * 2
    assert [t.shape for t in test] == [(config.n_test, 64)] * 2
    x = lm.dequantize(train[0][:5], 3, torch.Generator().manual_seed(0))
    assert x.shape == (15, 64)
    assert (x - train[0][:5].repeat(3, 1)).abs().max() <= 1 / 32  # within the grey level
    bpd = lm.gaussian_bpd(train[0], test[0], 8, 0, 0)
    assert bpd.shape == (config.n_test,) and bpd.mean() < math.log2(lm.N_LEVELS)  # a Gaussian beats guessing
    with pytest.raises(ValueError, match="copies"):
        lm.dequantize(train[0], 0, torch.Generator())


def test_summaries():
    mean, se = mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / math.sqrt(3))
    mean, se = paired_difference([1.0, 2.0, 4.0], [0.0, 1.0, 3.0])
    assert mean == 1.0 and se == 0.0  # a constant shift: no pairing noise
    means, ses = mean_se(np.array([[1.0, 2.0], [3.0, 2.0]]))
    assert np.allclose(means, [2.0, 2.0]) and np.allclose(ses, [1.0, 0.0])
    assert beyond(1.0, 0.4) and not beyond(1.0, 0.5) and not beyond(-0.5, 0.3)
    assert list(beyond(np.array([1.0, -1.0, 0.1]), np.array([0.1, 0.1, 0.1]))) == [True, True, False]
    with pytest.raises(ValueError, match="at least 2"):
        mean_se([1.0])
    with pytest.raises(ValueError, match="finite"):
        mean_se([1.0, float("nan")])
    with pytest.raises(ValueError, match="one shape"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
