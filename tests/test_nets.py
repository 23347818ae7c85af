"""Score networks: shapes, the std_t output convention, vmap-stacking, bad input."""

import pytest
import torch

import scorefusion as sf
from scorefusion.nets import ScoreMLP, ScoreUNet, noise_conditioning

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size, mult", [(8, (1, 2)), (16, (1, 2)), (32, (1, 2, 2))])
def test_unet_shapes(size, mult):
    torch.manual_seed(0)
    net = ScoreUNet(sf.VESDE(), channels=2, image_size=size, base=8, channel_mult=mult)
    x = torch.randn(3, 2, size, size)
    assert net(x, torch.rand(3) * 0.9 + 0.1).shape == x.shape
    assert net(x, 0.5).shape == x.shape  # a scalar time is broadcast


def test_output_is_divided_by_std():
    torch.manual_seed(0)
    sde = sf.VESDE()
    net = ScoreMLP(sde, 2)
    x = torch.randn(4, 2)
    t_small, t_large = torch.full((4,), 1e-4), torch.full((4,), 1.0)
    # the raw network output is O(1), so the score scales like 1/std_t
    ratio = net(x, t_small).norm() / net(x, t_large).norm()
    assert ratio > 50


def test_fused_unets_are_batched_and_match_the_loop():
    torch.manual_seed(0)
    nets = [ScoreUNet(sf.VESDE(), base=8) for _ in range(3)]
    fused = sf.FusedScore(nets, [0.2, 0.3, 0.5], vectorize=True)
    x, t = torch.randn(5, 1, 8, 8), torch.rand(5) * 0.9 + 0.1
    assert fused.batched
    with torch.no_grad():
        loop = sum(w * n(x, t) for w, n in zip([0.2, 0.3, 0.5], nets))
        assert torch.allclose(fused(x, t), loop, atol=1e-5)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_unet_default_layout_for_each_supported_size(size):
    net = ScoreUNet(sf.VPSDE(), image_size=size, base=8)
    x = torch.randn(2, 1, size, size)
    out = net(x, torch.full((2,), 0.3))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_score_scales_like_one_over_std_exactly():
    """The module returns raw / std_t: multiplying by std_t gives a function of (c_in x, log std) only."""
    torch.manual_seed(0)
    sde = sf.VESDE()
    net = ScoreMLP(sde, 3, hidden=16, depth=2)
    x, t = torch.randn(5, 3), torch.rand(5) * 0.9 + 0.1
    scale, std = sde.marginal(t)
    c_in = 1 / torch.sqrt(scale**2 + std**2)
    raw = net.net(torch.cat([x * c_in[:, None], net.embed(torch.log(std) / 4)], dim=1))
    assert torch.allclose(net(x, t) * std[:, None], raw, atol=1e-6)


def test_fused_mlps_are_batched_and_gradients_flow():
    torch.manual_seed(0)
    nets = [ScoreMLP(sf.VPSDE(), 2, hidden=16) for _ in range(3)]
    fused = sf.FusedScore(nets, [0.5, 0.25, 0.25], vectorize=True)
    x = torch.randn(4, 2, requires_grad=True)
    assert fused.batched
    out = fused(x, torch.full((4,), 0.2))
    (grad,) = torch.autograd.grad(out.sum(), x)  # the likelihood's divergence needs this
    assert grad.shape == x.shape and torch.isfinite(grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="x must have shape"):
        ScoreMLP(sf.VESDE(), 3)(torch.zeros(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match="x must have shape"):
        ScoreUNet(sf.VESDE(), base=8)(torch.zeros(2, 1, 16, 16), torch.ones(2))
    with pytest.raises(ValueError, match="divisible"):
        ScoreUNet(sf.VESDE(), image_size=6, channel_mult=(1, 2, 2))
    with pytest.raises(ValueError, match="hidden"):
        ScoreMLP(sf.VESDE(), 2, hidden=0)
    with pytest.raises(ValueError, match="t must be"):
        ScoreMLP(sf.VESDE(), 2)(torch.zeros(3, 2), torch.ones(2))
    with pytest.raises(ValueError, match="embed_dim must be even"):
        ScoreMLP(sf.VESDE(), 2, embed_dim=5)


@pytest.mark.parametrize("t", [0.0, -0.5, 1.5, float("nan"), torch.tensor([0.5, 0.0, 0.5])])
@pytest.mark.parametrize("make", [lambda: ScoreMLP(sf.VESDE(), 1, hidden=8, depth=1),
                                  lambda: ScoreUNet(sf.VESDE(), base=8)], ids=["mlp", "unet"])
def test_times_outside_the_interval_raise_instead_of_nan(make, t):
    net = make()
    x = torch.zeros(3, *((1,) if isinstance(net, ScoreMLP) else (1, 8, 8)))
    with pytest.raises(ValueError, match="^t "):
        net(x, t)


def test_checked_networks_still_stack_under_vmap():
    """The time check runs on the unbatched t inside FusedScore's vmap, and still rejects t = 0 there."""
    torch.manual_seed(0)
    nets = [ScoreMLP(sf.VESDE(), 2, hidden=8) for _ in range(2)]
    fused = sf.FusedScore(nets, [0.5, 0.5], vectorize=True)
    x = torch.randn(4, 2)
    with torch.no_grad():
        assert torch.allclose(fused(x, 0.3), 0.5 * nets[0](x, 0.3) + 0.5 * nets[1](x, 0.3), atol=1e-6)
    with pytest.raises(ValueError, match="t must lie in"):
        fused(x, torch.zeros(4))


def test_noise_conditioning_is_the_networks_input_scaling():
    sde = sf.VPSDE()
    x, t = torch.randn(5, 3, dtype=torch.float64), torch.linspace(0.1, 1.0, 5, dtype=torch.float64)
    t_out, c_in, c_noise, std = noise_conditioning(sde, x, t)
    scale, std_ref = sde.marginal(t)
    assert torch.equal(t_out, t) and torch.allclose(std, std_ref)
    assert torch.allclose(c_in, 1 / torch.sqrt(scale**2 + std_ref**2)) and torch.allclose(c_noise, torch.log(std_ref) / 4)
    assert noise_conditioning(sde, x, 0.5)[0].shape == (5,)  # a scalar time is broadcast


def test_float32_times_at_a_terminal_time_that_float32_rounds_up_are_accepted():
    sde = sf.VESDE(T=0.3)  # float32(0.3) = 0.30000001 > 0.3
    net = ScoreMLP(sde, 1, hidden=8, depth=1)
    assert net(torch.zeros(2, 1), torch.full((2,), sde.T)).shape == (2, 1)
    with pytest.raises(ValueError, match="t must lie in"):
        net(torch.zeros(2, 1), torch.full((2,), 0.31))
