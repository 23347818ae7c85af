"""Related systems (scorefusion.related): tiny configurations, shapes, determinism, bad input."""

import math

import pytest
import torch

import scorefusion as sf
from scorefusion.related import merging


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

def test_conditional_training_and_weight_average():
    sde = sf.VPSDE()
    _, x = _ring(256, 0)
    torch.manual_seed(0)
    m = merging.ConditionalScoreMLP(sde, 2, 2, hidden=32, depth=2)
    y = (x[:, 0] > 0).long()
    _, losses = merging.train_conditional(m, x, y, sde, epochs=15, batch_size=64,
                                          generator=torch.Generator().manual_seed(0), progress=False)
    assert sum(losses[-3:]) < sum(losses[:3])
    out = merging.DomainScore(m, 1)(x[:5], torch.full((5,), 0.5))
    assert out.shape == (5, 2)
    m2 = merging.ConditionalScoreMLP(sde, 2, 2, hidden=32, depth=2)
    avg = merging.average_weights([m, m2], [0.25, 0.75])
    name = "net.0.weight"
    assert torch.allclose(avg.state_dict()[name], 0.25 * m.state_dict()[name] + 0.75 * m2.state_dict()[name])
    assert merging.count_parameters([m, m2]) == 2 * merging.count_parameters(m)


def test_merge_pipeline_shapes():
    sde = sf.VPSDE()
    torch.manual_seed(0)
    srcs = [merging.ConditionalScoreMLP(sde, 2, 2, hidden=16, depth=1) for _ in range(2)]
    out = merging.merge(srcs[0], srcs, sde, finetune_epochs=1, n_samples=32, epochs=1, n_steps=5,
                        generator=torch.Generator().manual_seed(0), progress=False)
    assert set(out) == {"averaged", "merged", "rooted"} and len(out["rooted"]) == 2
    assert out["rooted"][0] is srcs[0]
    x = merging.sample_domain(out["merged"], 1, sde, 8, n_steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 2) and torch.isfinite(x).all()


def test_merging_bad_input():
    sde = sf.VPSDE()
    a = merging.ConditionalScoreMLP(sde, 2, 2, hidden=16, depth=1)
    b = merging.ConditionalScoreMLP(sde, 2, 2, hidden=8, depth=1)
    with pytest.raises(ValueError, match="architecture"):
        merging.average_weights([a, b])
    with pytest.raises(ValueError, match="simplex"):
        merging.average_weights([a, a], [0.7, 0.7])
    with pytest.raises(ValueError, match="labels"):
        a(torch.zeros(3, 2), torch.full((3,), 0.5), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        a(torch.zeros(3, 2), torch.full((3,), 0.5), torch.zeros(3))
    with pytest.raises(ValueError, match="k must be"):
        merging.DomainScore(a, 2)


# ---- gcd --------------------------------------------------------------------------------------
