"""Model rooting and weight averaging (scorefusion.related.merging): tiny configurations, shapes,
losses that decrease, determinism, ScoreFusion over domain scores, bad input."""


import pytest
import torch
from toy_data import ring

import scorefusion as sf
from scorefusion.related import merging

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(seed, hidden=16, depth=1, k=2):
    return merging.ConditionalScoreMLP(sf.VPSDE(), 2, k, hidden=hidden, depth=depth, init_seed=seed)


def test_conditional_training_and_weight_average():
    sde = sf.VPSDE()
    _, x = ring(256, 0)
    m = merging.ConditionalScoreMLP(sde, 2, 2, hidden=32, depth=2, init_seed=0)
    y = (x[:, 0] > 0).long()
    _, losses = merging.train_conditional(m, x, y, sde, epochs=15, batch_size=64,
                                          generator=torch.Generator().manual_seed(0), progress=False)
    assert len(losses) == 15 and sum(losses[-3:]) < 0.8 * sum(losses[:3])
    out = merging.DomainScore(m, 1)(x[:5], torch.full((5,), 0.5))
    assert out.shape == (5, 2)
    assert torch.allclose(out, m(x[:5], torch.full((5,), 0.5), torch.ones(5, dtype=torch.long)))
    m2 = merging.ConditionalScoreMLP(sde, 2, 2, hidden=32, depth=2, init_seed=1)
    avg = merging.average_weights([m, m2], [0.25, 0.75])
    name = "net.0.weight"
    assert torch.allclose(avg.state_dict()[name], 0.25 * m.state_dict()[name] + 0.75 * m2.state_dict()[name])
    assert merging.count_parameters([m, m2]) == 2 * merging.count_parameters(m)


def test_init_seed_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = _tiny(7), _tiny(7), _tiny(8)
    after = torch.rand(3)
    assert torch.equal(before, after)  # the global RNG was not consumed
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.net[0].weight, c.net[0].weight)


def test_rooting_decreases_loss_and_moves_less_than_independent_training():
    sde = sf.VPSDE()
    _, x = ring(512, 1)
    sources = []
    for k in range(2):
        m = merging.ConditionalScoreMLP(sde, 2, 2, hidden=32, depth=2, init_seed=10 + k)
        xk = x + 3.0 * k  # domain 1 is the ring shifted
        merging.train_conditional(m, xk, torch.full((512,), k), sde, epochs=10, batch_size=128,
                                  generator=torch.Generator().manual_seed(k), progress=False)
        sources.append(m)
    rooted, losses = merging.root_model(sources[0], sources[1], 1, sde, n_samples=256, epochs=8, batch_size=64,
                                        n_steps=20, generator=torch.Generator().manual_seed(3), progress=False)
    assert losses[-1] < losses[0]
    flat = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (sources[0], sources[1], rooted)]
    assert (flat[2] - flat[0]).norm() < (flat[1] - flat[0]).norm()
    # root and source untouched, rooted copy distinct
    assert rooted is not sources[0] and all(p.requires_grad for p in rooted.parameters())


def test_merge_pipeline_shapes_and_determinism():
    sde = sf.VPSDE()
    srcs = [_tiny(s) for s in range(2)]

    def run():
        return merging.merge(srcs, sde, finetune_epochs=2, rooting_epochs=2, n_samples=32, n_steps=5,
                             generator=torch.Generator().manual_seed(0), progress=False)

    out = run()
    assert set(out) == {"averaged", "merged", "rooted", "losses"} and len(out["rooted"]) == 2
    assert out["rooted"][0] is srcs[0]
    assert out["losses"]["rooting"][0] == [] and len(out["losses"]["rooting"][1]) == 2
    assert len(out["losses"]["finetune"]) == 2
    x = merging.sample_domain(out["merged"], 1, sde, 8, n_steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 2) and torch.isfinite(x).all()
    again = run()
    assert all(torch.equal(p, q) for p, q in zip(out["merged"].parameters(), again["merged"].parameters()))
    naive = merging.merge(srcs, sde, rooting=False, finetune_epochs=0, progress=False)
    assert naive["merged"] is naive["averaged"] and naive["rooted"] == srcs


def test_generated_data_and_finetune_reuse():
    sde = sf.VPSDE()
    srcs = [_tiny(s, k=3) for s in range(3)]
    x, y = merging.generated_data(srcs, sde, 10, n_steps=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (30, 2) and y.tolist() == [0] * 10 + [1] * 10 + [2] * 10 and y.dtype == torch.long
    start = merging.average_weights(srcs)
    tuned, losses = merging.finetune(start, srcs, sde, epochs=3, data=(x, y),
                                     generator=torch.Generator().manual_seed(1), progress=False)
    assert len(losses) == 3 and tuned is not start
    assert not torch.equal(tuned.net[0].weight, start.net[0].weight)


def test_domain_scores_fuse_with_their_own_labels():
    """FusedScore stacks DomainScores with torch.func: each must keep its own domain label."""
    srcs = [_tiny(s, k=3) for s in range(3)]
    aux = [merging.DomainScore(m, k) for k, m in enumerate(srcs)]
    lam = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    fused = sf.FusedScore(aux, lam, vectorize=True)
    assert fused.batched
    x, t = torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), torch.full((6,), 0.4)
    loop = sum(float(w) * a(x, t) for w, a in zip(lam, aux))
    assert torch.allclose(fused(x, t), loop, atol=1e-5)
    assert [a.k for a in aux] == [0, 1, 2]


def test_merging_bad_input():
    sde = sf.VPSDE()
    a = merging.ConditionalScoreMLP(sde, 2, 2, hidden=16, depth=1)
    b = merging.ConditionalScoreMLP(sde, 2, 2, hidden=8, depth=1)
    with pytest.raises(ValueError, match="architecture"):
        merging.average_weights([a, b])
    with pytest.raises(ValueError, match="simplex"):
        merging.average_weights([a, a], [0.7, 0.7])
    with pytest.raises(ValueError, match="non-empty"):
        merging.average_weights([])
    with pytest.raises(TypeError, match="ConditionalScoreMLP"):
        merging.average_weights([a, torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="labels"):
        a(torch.zeros(3, 2), torch.full((3,), 0.5), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        a(torch.zeros(3, 2), torch.full((3,), 0.5), torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        a(torch.zeros(3, 3), torch.full((3,), 0.5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be"):
        merging.DomainScore(a, 2)
    with pytest.raises(TypeError, match="init_seed"):
        merging.ConditionalScoreMLP(sde, 2, 2, init_seed=1.5)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="labels must have shape"):
        merging.train_conditional(a, x, torch.zeros(3, dtype=torch.long), sde, progress=False)
    with pytest.raises(TypeError, match="labels"):
        merging.train_conditional(a, x, torch.zeros(4), sde, progress=False)
    with pytest.raises(ValueError, match="labels must lie"):
        merging.train_conditional(a, x, torch.full((4,), 5), sde, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        merging.train_conditional(a, torch.full((4, 2), float("nan")), torch.zeros(4, dtype=torch.long), sde,
                                  progress=False)
    with pytest.raises(ValueError, match="epochs"):
        merging.train_conditional(a, x, torch.zeros(4, dtype=torch.long), sde, epochs=0, progress=False)
    with pytest.raises(ValueError, match="at least two"):
        merging.merge([a], sde, progress=False)
    with pytest.raises(ValueError, match="root_index"):
        merging.merge([a, a], sde, root_index=2, progress=False)
    with pytest.raises(ValueError, match="finetune_epochs"):
        merging.merge([a, a], sde, finetune_epochs=-1, progress=False)
    with pytest.raises(ValueError, match="k must be"):
        merging.root_model(a, a, 3, sde, progress=False)
    with pytest.raises(TypeError, match="model"):
        merging.count_parameters("net")


def test_root_model_fits_given_samples():
    sde = sf.VPSDE()
    srcs = [_tiny(s) for s in range(2)]
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0)) + 2.0

    def root(data):
        return merging.root_model(srcs[0], srcs[1], 1, sde, epochs=2, batch_size=20, data=data,
                                  generator=torch.Generator().manual_seed(1), progress=False)

    rooted, losses = root(x)
    again, _ = root(x)
    other, _ = root(x + 1.0)
    assert len(losses) == 2
    assert all(torch.equal(p, q) for p, q in zip(rooted.parameters(), again.parameters()))
    assert not torch.equal(rooted.net[0].weight, other.net[0].weight)  # it fits the given samples
    with pytest.raises(ValueError, match="data"):
        root(torch.zeros(5, 3))
