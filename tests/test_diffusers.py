"""ScoreFusion for diffusers pipelines (scorefusion.integrations.diffusers).

Everything runs offline on tiny, randomly initialised UNets and schedulers built
here (``from_pretrained`` is never called). Torch runs on one thread in this file:
tiny convolutions are ~10x slower when two threads contend with other processes.
"""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import (
    DDIMPipeline,
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
    UNet2DModel,
)
from diffusers.models.unets.unet_2d import UNet2DOutput
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

from scorefusion import FusedScore, dsm_loss, fit_weights
from scorefusion.integrations.diffusers import (
    DDPMScheduleSDE,
    DiffusersScore,
    FusedUNet,
    encode_images,
    epsilon_to_score,
    from_epsilon,
    score_to_epsilon,
    to_epsilon,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_unet(seed, **overrides):
    torch.manual_seed(seed)
    config = {"sample_size": 8, "in_channels": 3, "out_channels": 3, "block_out_channels": (8, 16),
              "layers_per_block": 1, "norm_num_groups": 8, "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
              "up_block_types": ("AttnUpBlock2D", "UpBlock2D"), "attention_head_dim": 4}
    config.update(overrides)
    return UNet2DModel(**config).eval()


def tiny_cond_unet(seed, **overrides):
    torch.manual_seed(seed)
    config = {"sample_size": 8, "in_channels": 4, "out_channels": 4, "block_out_channels": (8, 16),
              "layers_per_block": 1, "norm_num_groups": 8,
              "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
              "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"), "cross_attention_dim": 16,
              "attention_head_dim": 2}
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ optional import

def test_scorefusion_does_not_import_diffusers_and_missing_extra_is_named():
    code = (
        "import sys, scorefusion\n"
        "assert 'diffusers' not in sys.modules, 'import scorefusion pulled in diffusers'\n"
        "sys.modules['diffusers'] = None\n"
        "try:\n"
        "    import scorefusion.integrations.diffusers\n"
        "except ImportError as err:\n"
        "    assert 'pip install scorefusion[diffusers]' in str(err), str(err)\n"
        "else:\n"
        "    raise SystemExit('no ImportError without diffusers')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ parametrisations and the SDE

def test_parametrisations_agree_with_scheduler_conventions():
    sched = DDPMScheduler(num_train_timesteps=1000)
    g = gen(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    steps = torch.tensor([0, 10, 500, 999])
    xt = sched.add_noise(x0, eps, steps)
    v = sched.get_velocity(x0, eps, steps)  # diffusers' definition of the v target
    acp = sched.alphas_cumprod[steps]
    scale, std = acp.sqrt(), (1 - acp).sqrt()
    assert torch.allclose(to_epsilon(eps, xt, scale, std, "epsilon"), eps)
    assert torch.allclose(to_epsilon(v, xt, scale, std, "v_prediction"), eps, atol=1e-5)
    assert torch.allclose(to_epsilon(x0, xt, scale, std, "sample"), eps, atol=1e-4)
    # both divide by alpha (~0.0064 at n = 999), which amplifies float32 rounding of x_t ~160-fold
    assert torch.allclose(from_epsilon(eps, xt, scale, std, "v_prediction"), v, atol=1e-4)
    assert torch.allclose(from_epsilon(eps, xt, scale, std, "sample"), x0, atol=1e-4)
    score = epsilon_to_score(eps, std)
    assert torch.allclose(score * std.reshape(-1, 1, 1, 1), -eps)
    assert torch.allclose(score_to_epsilon(score, std), eps, atol=1e-6)
    with pytest.raises(ValueError, match="prediction_type"):
        to_epsilon(eps, xt, scale, std, "flow")


def test_schedule_sde_matches_the_discrete_schedule_at_the_nodes():
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sde = DDPMScheduleSDE(sched)
    n = torch.tensor([0, 1, 17, 500, 999])
    t = sde.time(n)
    assert torch.allclose(t, (n + 1).double() / 1000)
    assert torch.allclose(sde.timestep(t), n.double())
    scale, std = sde.marginal(t)
    acp = sched.alphas_cumprod[n].double()
    assert torch.allclose(scale, acp.sqrt(), rtol=1e-12) and torch.allclose(std, (1 - acp).sqrt(), rtol=1e-12)
    x0, z = torch.randn(5, 2, 4, 4, generator=gen(1)), torch.randn(5, 2, 4, 4, generator=gen(2))
    noised = scale.float().reshape(-1, 1, 1, 1) * x0 + std.float().reshape(-1, 1, 1, 1) * z
    assert torch.allclose(noised, sched.add_noise(x0, z, n), atol=1e-6)
    assert sde.marginal(0.0)[0] == 1 and sde.marginal(0.0)[1] == 0
    # the SDE's coefficients generate the interpolated marginals: d/dt log scale = -beta / 2 inside a piece
    tc = torch.tensor([0.1234, 0.5678], dtype=torch.float64)
    h = 1e-7
    dlog = (sde.marginal(tc + h)[0].log() - sde.marginal(tc - h)[0].log()) / (2 * h)
    assert torch.allclose(dlog, -0.5 * sde.beta(tc), rtol=1e-5)
    drift, diffusion = sde.sde(torch.ones(2, 3, dtype=torch.float64), tc)
    assert torch.allclose(diffusion**2, sde.beta(tc)) and torch.allclose(drift[:, 0], -0.5 * sde.beta(tc))
    # beta(t) ~ N beta_n (Song et al. 2021, App. B)
    beta_n = sched.betas[n[2]].double()
    assert abs(float(sde.beta(sde.time(n[2]) - 0.5e-3)) / (1000 * float(beta_n)) - 1) < 1e-2
    assert sde.prior_sample((3, 2), generator=gen(0)).shape == (3, 2)
    with pytest.raises(ValueError, match="t must lie"):
        sde.marginal(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="zero-terminal-SNR"):
        DDPMScheduleSDE(DDIMScheduler(rescale_betas_zero_snr=True))
    with pytest.raises(TypeError, match="alphas_cumprod"):
        DDPMScheduleSDE(object())


def test_score_adapter_is_the_unet_at_the_nodes_and_refuses_untrained_times():
    unet = tiny_unet(0)
    sched = EulerDiscreteScheduler(num_train_timesteps=100)  # any DDPM-family scheduler carries alphas_cumprod
    score = DiffusersScore(unet, sched)
    assert score.prediction_type == "epsilon"
    x = torch.randn(3, 3, 8, 8, generator=gen(0))
    n = torch.tensor([0, 42, 99])
    t = score.sde.time(n)
    with torch.no_grad():
        s = score(x, t)
        eps = unet(x, n).sample
    std = score.sde.marginal(t)[1].float().reshape(-1, 1, 1, 1)
    assert torch.allclose(-std * s, eps, atol=1e-6)
    assert s.shape == x.shape and s.dtype == x.dtype
    with pytest.raises(ValueError, match="t_range"):
        score(x, torch.full((3,), 1e-4))
    v_score = DiffusersScore(unet, DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction"))
    assert v_score.prediction_type == "v_prediction"


# ------------------------------------------------------------------ FusedUNet in pipelines

@pytest.mark.parametrize("pipeline_cls, scheduler_cls", [(DDPMPipeline, DDPMScheduler), (DDIMPipeline, DDIMScheduler)])
def test_one_hot_lam_reproduces_a_single_pipeline_exactly(pipeline_cls, scheduler_cls):
    unets = [tiny_unet(0), tiny_unet(1)]
    pipe = pipeline_cls(unet=unets[1], scheduler=scheduler_cls(num_train_timesteps=100))
    pipe.set_progress_bar_config(disable=True)
    single = pipe(batch_size=2, generator=gen(3), num_inference_steps=8, output_type="np").images
    pipe.unet = FusedUNet(unets, [0.0, 1.0])
    fused = pipe(batch_size=2, generator=gen(3), num_inference_steps=8, output_type="np").images
    assert (single == fused).all()
    pipe.unet.set_lam([0.5, 0.5])
    mixed = pipe(batch_size=2, generator=gen(3), num_inference_steps=8, output_type="np").images
    assert mixed.shape == single.shape and abs(mixed - single).max() > 1e-3  # the other model matters


def test_fused_unet_is_the_linear_combination_and_looks_like_a_unet():
    unets = [tiny_unet(k) for k in range(3)]
    lam = [0.2, 0.5, 0.3]
    fused = FusedUNet(unets, lam)
    x, steps = torch.randn(2, 3, 8, 8, generator=gen(0)), torch.tensor([5, 70])
    with torch.no_grad():
        out = fused(x, steps)
        manual = sum(w * u(x, steps).sample for w, u in zip(lam, unets))
        comps = fused.components(x, steps)
        plain = fused(x, steps, return_dict=False)
    assert isinstance(out, UNet2DOutput) and isinstance(plain, tuple)
    assert torch.allclose(out.sample, manual, atol=1e-6) and torch.equal(plain[0], out.sample)
    assert comps.shape == (3, 2, 3, 8, 8)
    assert torch.allclose(torch.tensordot(fused.lam.float(), comps, dims=1), manual, atol=1e-6)
    assert fused.config.sample_size == 8 and fused.in_channels == 3 and fused.out_channels == 3
    assert fused.dtype == torch.float32 and fused.device == torch.device("cpu")
    assert fused.conv_in is unets[0].conv_in  # read-only attributes come from the first UNet
    assert not hasattr(fused, "set_attention_slice")  # UNet2DModel has none, so pipelines skip it, as for one UNet
    with pytest.raises(AttributeError, match="each of .unets"):
        fused.save_pretrained  # noqa: B018 - a method that would act on one UNet only
    fused.to(torch.float16)
    assert fused.lam.tolist() == lam  # weights are not buffers: casting the model does not round them


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_full_ddim_pipeline_in_half_precision(dtype):
    unets = [tiny_unet(0), tiny_unet(1)]
    pipe = DDIMPipeline(unet=FusedUNet(unets, [0.3, 0.7]), scheduler=DDIMScheduler(num_train_timesteps=100))
    pipe.set_progress_bar_config(disable=True)
    pipe.to(dtype)  # the pipeline casts the fused UNet like any other component
    assert pipe.dtype == dtype and pipe.unet.dtype == dtype
    assert all(u.dtype == dtype for u in unets) and pipe.unet.lam.tolist() == [0.3, 0.7]
    # output_type="pt": DDIMPipeline's own numpy conversion does not take bf16
    images = pipe(batch_size=3, generator=gen(0), num_inference_steps=5, output_type="pt").images
    assert images.shape == (3, 3, 8, 8) and images.dtype == dtype
    assert torch.isfinite(images.float()).all() and (images >= 0).all() and (images <= 1).all()
    x = torch.randn(2, 3, 8, 8, dtype=dtype, generator=gen(1))
    with torch.no_grad():
        out = pipe.unet(x, 10).sample
        one = FusedUNet(unets, [1.0, 0.0])(x, 10).sample
        parts = [u(x, 10).sample.float() for u in unets]
    assert out.dtype == dtype and torch.equal(one, unets[0](x, 10).sample)
    assert torch.equal(out, (0.3 * parts[0] + 0.7 * parts[1]).to(dtype))  # summed in float32, rounded once


def test_conditional_unets_with_classifier_free_guidance_batches():
    unets = [tiny_cond_unet(0), tiny_cond_unet(1)]
    lam, w = [0.4, 0.6], 7.5
    fused = FusedUNet(unets, lam)
    g = gen(0)
    latents = torch.randn(2, 4, 8, 8, generator=g)
    cond, uncond = torch.randn(2, 5, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    x_in = torch.cat([latents] * 2)  # what pipelines do for guidance: [uncond; cond]
    states = torch.cat([uncond, cond])
    with torch.no_grad():
        out = fused(x_in, torch.tensor(30), encoder_hidden_states=states)
        parts = [u(x_in, torch.tensor(30), encoder_hidden_states=states).sample for u in unets]
    assert isinstance(out, UNet2DConditionOutput) and out.sample.shape == (4, 4, 8, 8)
    assert torch.allclose(out.sample, lam[0] * parts[0] + lam[1] * parts[1], atol=1e-6)

    def guide(e):
        e_u, e_c = e.chunk(2)
        return e_u + w * (e_c - e_u)

    fused_then_guided = guide(out.sample)
    guided_then_fused = lam[0] * guide(parts[0]) + lam[1] * guide(parts[1])
    assert torch.allclose(fused_then_guided, guided_then_fused, atol=1e-5)
    # configuring methods that pipelines call reach every UNet
    fused.enable_freeu(s1=0.9, s2=0.2, b1=1.2, b2=1.4)
    assert all(u.up_blocks[0].b1 == 1.2 for u in unets)
    fused.disable_freeu()
    assert all(u.up_blocks[0].b1 is None for u in unets)


def test_mismatched_unets_raise_clear_errors():
    base = tiny_unet(0)
    with pytest.raises(ValueError, match="sample_size"):
        FusedUNet([base, tiny_unet(1, sample_size=16)], [0.5, 0.5])
    with pytest.raises(ValueError, match="in_channels"):
        FusedUNet([base, tiny_unet(1, in_channels=4)], [0.5, 0.5])
    with pytest.raises(ValueError, match="prediction type"):
        FusedUNet([base, tiny_unet(1)], [0.5, 0.5], prediction_type=["epsilon", "v_prediction"])
    with pytest.raises(ValueError, match="cross_attention_dim"):
        FusedUNet([tiny_cond_unet(0), tiny_cond_unet(1, cross_attention_dim=8)], [0.5, 0.5])
    with pytest.raises(TypeError, match="mix"):
        FusedUNet([base, tiny_cond_unet(1)], [0.5, 0.5])
    with pytest.raises(ValueError, match="dtype"):
        FusedUNet([base, tiny_unet(1).to(torch.bfloat16)], [0.5, 0.5])
    with pytest.raises(ValueError, match="simplex"):
        FusedUNet([base, tiny_unet(1)], [0.7, 0.7])
    with pytest.raises(TypeError, match="UNet2DModel"):
        FusedUNet([base, torch.nn.Linear(2, 2)], [0.5, 0.5])


# ------------------------------------------------------------------ learning lam with fit_weights

class GaussianUNet(torch.nn.Module):
    """An analytic 'UNet': the exact posterior-mean prediction for data N(mean, var I) under a DDPM schedule.

    It answers only at integer timesteps and reads alpha_bar from the scheduler itself, so it checks
    the adapter's time mapping independently of DDPMScheduleSDE's interpolation. Its posterior means
    are written from the Gaussian formulas, not with the conversion helpers under test.
    """

    def __init__(self, mean, var, alphas_cumprod, prediction_type):
        super().__init__()
        self.mean, self.var = mean, var
        self.acp, self.prediction_type = alphas_cumprod.double(), prediction_type

    def forward(self, sample, timestep, return_dict=True):
        tau = torch.as_tensor(timestep, dtype=torch.float64).expand(sample.shape[0])
        n = tau.round()
        assert (tau - n).abs().max() < 1e-3, f"queried between timesteps: {tau}"
        a2 = self.acp[n.long()].reshape(-1, 1, 1, 1)
        a, s = a2.sqrt(), (1 - a2).sqrt()
        r = (sample.double() - a * self.mean) / (a2 * self.var + s * s)  # minus the score of N(a m, a^2 v + s^2)
        eps = s * r  # E[eps | x_t]
        x0 = self.mean + a * self.var * r  # E[x_0 | x_t]
        out = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}[self.prediction_type]
        out = out.to(sample.dtype)
        return UNet2DOutput(sample=out) if return_dict else (out,)


def test_fit_weights_recovers_planted_lam_through_the_adapter():
    """Identifiable by construction: auxiliaries N(m_i, v I) with one shared v and the target N(sum lam*_i m_i, v I).

    Noised Gaussians with a shared covariance have scores linear in the mean, so the fused score of lam* is
    exactly the target's score at every t (the barycenter is the target and the fused score is its noised
    score); lam* minimises the population DSM and ISM objectives, and with three non-collinear means it is
    the unique minimiser. The three auxiliaries speak three parametrisations (epsilon, v, sample), so a wrong
    conversion or a wrong time-to-timestep map biases lam; the last assertion shows that misreading one
    parametrisation is detected.
    """
    sched = DDPMScheduler(num_train_timesteps=1000)
    sde = DDPMScheduleSDE(sched)
    g = gen(0)
    shape, var = (3, 4, 4), 0.25
    means = [2 * torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]
    types = ["epsilon", "v_prediction", "sample"]
    aux = [DiffusersScore(GaussianUNet(m, var, sched.alphas_cumprod, p), sde, prediction_type=p)
           for m, p in zip(means, types)]
    lam_star = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    n = 256
    x0 = sum(w * m for w, m in zip(lam_star, means)) + var**0.5 * torch.randn((n,) + shape, generator=g,
                                                                             dtype=torch.float64)
    steps = torch.randint(0, 1000, (n,), generator=g)  # DSM at the scheduler's own timesteps t = (n + 1) / N
    dsm = fit_weights(aux, x0, sde, method="dsm", t=sde.time(steps), generator=gen(1))
    ism = fit_weights(aux, x0, sde, method="ism", t=sde.t_min, generator=gen(2))
    # seeds 0-4 gave max errors <= 0.012 (DSM) and <= 0.004 (ISM) at n = 256
    assert (dsm.lam - lam_star).abs().max() < 0.03, dsm.lam
    assert (ism.lam - lam_star).abs().max() < 0.015, ism.lam
    misread = [aux[0], DiffusersScore(aux[1].unet, sde, prediction_type="epsilon"), aux[2]]
    wrong = fit_weights(misread, x0, sde, method="dsm", t=sde.time(steps), generator=gen(1))
    assert (wrong.lam - lam_star).abs().max() > 0.1, wrong.lam


def test_fit_weights_on_tiny_unets_solves_the_dsm_quadratic_of_the_pipeline_model():
    """Random UNets have no planted lam; what can fail here is the plumbing: the fitted lam must minimise the
    DSM loss of the fused model on the same draws, and the fused score must be the one FusedUNet samples with."""
    sched = DDPMScheduler(num_train_timesteps=100)
    unets = [tiny_unet(0), tiny_unet(1)]
    aux = [DiffusersScore(u, sched) for u in unets]
    sde = aux[0].sde
    x0 = torch.rand(24, 3, 8, 8, generator=gen(0)) * 2 - 1
    t_range = (sde.t_min, 10 * sde.t_min)
    fit = fit_weights(aux, x0, sde, method="dsm", t_range=t_range, generator=gen(5))
    assert fit.lam.shape == (2,) and abs(float(fit.lam.sum()) - 1) < 1e-9 and (fit.lam >= 0).all()
    with torch.no_grad():
        def loss(lam):  # same seed -> same (t, z) draws as the fit
            return float(dsm_loss(FusedScore(aux, lam), x0, sde, generator=gen(5), t_range=t_range))

        best = loss(fit.lam)
        assert abs(best - fit.loss) < 1e-4 * (1 + abs(best))
        for other in ([1.0, 0.0], [0.0, 1.0], [0.5, 0.5]):
            assert best <= loss(other) + 1e-5
        # the library's fused score and the pipeline's fused UNet are one model
        lam = [0.3, 0.7]
        x, t = torch.randn(4, 3, 8, 8, generator=gen(1)), sde.time(torch.tensor([0, 9, 50, 99]))
        assert torch.allclose(DiffusersScore(FusedUNet(unets, lam), sched)(x, t), FusedScore(aux, lam)(x, t),
                              atol=1e-5)
    ism = fit_weights(aux, x0[:8], sde, method="ism", t=sde.t_min, n_probes=2, generator=gen(6))
    assert abs(float(ism.lam.sum()) - 1) < 1e-9 and ism.kkt_residual < 1e-6


def test_conditional_score_expands_the_condition_to_the_batch():
    unet = tiny_cond_unet(0)
    sched = DDIMScheduler(num_train_timesteps=100)
    emb = torch.randn(1, 5, 16, generator=gen(0))
    score = DiffusersScore(unet, sched, condition={"encoder_hidden_states": emb})
    x, t = torch.randn(3, 4, 8, 8, generator=gen(1)), score.sde.time(torch.tensor([3, 30, 90]))
    with torch.no_grad():
        s = score(x, t)
        eps = unet(x, torch.tensor([3, 30, 90]), encoder_hidden_states=emb.expand(3, 5, 16)).sample
    std = score.sde.marginal(t)[1].float().reshape(-1, 1, 1, 1)
    assert torch.allclose(-std * s, eps, atol=1e-6)
    bad = DiffusersScore(unet, sched, condition={"encoder_hidden_states": emb.expand(2, 5, 16)})
    with pytest.raises(ValueError, match="batch size"):
        bad(x, t)


def test_encode_images_gives_scaled_vae_latents():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8, sample_size=16, scaling_factor=0.5).eval()
    images = torch.rand(2, 3, 16, 16, generator=gen(0)) * 2 - 1
    latents = encode_images(vae, images, sample=False)
    with torch.no_grad():
        expected = vae.encode(images).latent_dist.mode() * 0.5
    assert latents.shape == (2, 4, 8, 8) and torch.allclose(latents, expected)
    drawn = [encode_images(vae, images, generator=gen(1)) for _ in range(2)]
    assert torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], latents)  # seeded posterior draws
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        encode_images(vae, images * 3)


# ------------------------------------------------------------------ the example script

def test_example_script_runs_end_to_end_on_tiny_pipelines(tmp_path):
    """``--tiny``: prompt -> CLIP -> fused UNet with guidance -> VAE, lam sweep, a learned lam, weight merging."""
    import numpy as np
    from PIL import Image

    example = runpy.run_path(str(ROOT / "examples" / "barycenter_stable_diffusion.py"))
    out = tmp_path / "tiny"
    summary = example["main"](["--tiny", "--out", str(out), "--prompt", "a cat", "--steps", "2", "--lam", "0", "1",
                               "--n-images", "1", "--fit-draws", "1", "--compare-merge"])
    lam = summary["fit"]["lam"]
    assert len(lam) == 2 and abs(sum(lam) - 1) < 1e-9 and min(lam) >= 0
    assert summary["lam"] == [0.0, 1.0, lam[1]] and summary["grid_rows"] == 2
    grid = Image.open(out / "grid.png")
    assert grid.size == (3 * 8, 2 * 8)
    a, b = (np.asarray(Image.open(out / f"barycenter_lam{v:.3f}_0.png")) for v in (0.0, 1.0))
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0  # the two models differ
    # at the end points barycenter and weight merging are the same model
    assert np.array_equal(a, np.asarray(Image.open(out / "merged_lam0.000_0.png")))


def test_example_script_loads_local_pipelines_and_lam0_is_model_a(tmp_path):
    """The real-weights path: two pipeline folders on disk, loaded with local_files_only=True."""
    import numpy as np
    from diffusers import DiffusionPipeline
    from PIL import Image

    example = runpy.run_path(str(ROOT / "examples" / "barycenter_stable_diffusion.py"))
    pipe, unet_b, _ = example["build_tiny"](0)
    pipe.save_pretrained(tmp_path / "a")
    pipe.unet = unet_b
    pipe.save_pretrained(tmp_path / "b")
    out = tmp_path / "run"
    args = ["--out", str(out), "--prompt", "a cat", "--steps", "2", "--lam", "0", "0.5", "--n-images", "1",
            "--seed", "3", "--device", "cpu"]
    example["main"](["--model-a", str(tmp_path / "a"), "--model-b", str(tmp_path / "b")] + args)
    alone = DiffusionPipeline.from_pretrained(tmp_path / "a", local_files_only=True)
    alone.set_progress_bar_config(disable=True)
    image = alone("a cat", num_inference_steps=2, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(3),
                  height=8, width=8).images[0]
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(out / "barycenter_lam0.000_0.png")))
