"""Sample the KL barycenter of two Stable Diffusion checkpoints (ScoreFusion, Sec. 5).

At every denoising step the two UNets' noise predictions are mixed with weights
(1 - lam, lam); with lam swept over [0, 1] the images interpolate between the two
models. Optionally lam is also *learned* from a few target images (ScoreFusion's
fit: denoising score matching of the fused score at small noise, solved exactly on
the simplex), and the weight-merged UNet is shown beside the barycenter for
comparison, as in the paper.

The two checkpoints must share the VAE, text encoder and noise schedule (e.g. SD 1.5
and a fine-tune of it; or two SDXL fine-tunes). Weights are read from disk only
(``local_files_only=True``); nothing is downloaded.

    python examples/barycenter_stable_diffusion.py \\
        --model-a /models/sd15 --model-b /models/sd15-finetune \\
        --prompt "a lighthouse at dusk" --lam 0 0.25 0.5 0.75 1 --out runs/bary \\
        [--target-images my_style/ --compare-merge] [--steps 30 --guidance 7.5 --seed 0]

``--tiny`` builds two tiny random pipelines in-process instead (seconds on a CPU; used
by the tests). Outputs: ``grid.png`` (rows: images, columns: lam; a second block of rows
for weight merging), one PNG per image, and ``summary.json``.
"""

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from scorefusion import fit_weights
from scorefusion.integrations.diffusers import DiffusersScore, FusedUNet, encode_images

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-a", help="local diffusers pipeline folder (model_index.json) of the first model")
    p.add_argument("--model-b", help="local pipeline folder of the second model (its unet/ and scheduler/ are used)")
    p.add_argument("--prompt", default="a photograph of a lighthouse at dusk")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--lam", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="weights of model B; model A gets 1 - lam")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--steps", type=int, default=30, help="denoising steps")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    p.add_argument("--n-images", type=int, default=2, help="images per lam (same seeds for every lam)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default fp16 on CUDA, fp32 on CPU")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--target-images", default=None,
                   help="folder of target images: learn lam from them (SD 1.x/2.x) and add it to the sweep")
    p.add_argument("--fit-draws", type=int, default=8, help="noise draws per target image for the DSM fit")
    p.add_argument("--fit-max-timestep", type=int, default=50,
                   help="fit on timesteps 0..this (the small-noise regime of the paper)")
    p.add_argument("--fit-batch-size", type=int, default=8)
    p.add_argument("--compare-merge", action="store_true",
                   help="also sample from the weight-averaged UNet (1 - lam) A + lam B")
    p.add_argument("--tiny", action="store_true", help="tiny random pipelines built in-process (for tests)")
    args = p.parse_args(argv)
    if not args.tiny and not (args.model_a and args.model_b):
        p.error("--model-a and --model-b are required (or --tiny)")
    for lam in args.lam:
        if not 0.0 <= lam <= 1.0:
            p.error(f"--lam values must lie in [0, 1], got {lam}")
    return args


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_models(args, dtype):
    """Pipeline of model A, UNet of model B, and both prediction types, from local folders only."""
    from diffusers import DiffusionPipeline, UNet2DConditionModel

    pipe = DiffusionPipeline.from_pretrained(args.model_a, torch_dtype=dtype, local_files_only=True)
    unet_b = UNet2DConditionModel.from_pretrained(args.model_b, subfolder="unet", torch_dtype=dtype,
                                                  local_files_only=True)
    type_a = pipe.scheduler.config.get("prediction_type", "epsilon")
    try:
        sched_b = pipe.scheduler.__class__.load_config(args.model_b, subfolder="scheduler", local_files_only=True)
        type_b = sched_b.get("prediction_type", "epsilon")
    except OSError:
        print(f"{args.model_b} has no scheduler/ folder; assuming model A's prediction type {type_a!r}")
        type_b = type_a
    types = [type_a, type_b]
    return pipe, unet_b, types


def build_tiny(seed=0):
    """Two tiny random text-to-image pipelines sharing VAE, text encoder and scheduler (no files, no downloads)."""
    with torch.random.fork_rng(devices=[]):  # diffusers initialises weights from the global RNG; restore it after
        return _build_tiny(seed)


def _build_tiny(seed):
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    def unet(s):
        torch.manual_seed(s)
        return UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
            norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=2)

    torch.manual_seed(seed + 100)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,),
                        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                        norm_num_groups=8, sample_size=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=200, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    with tempfile.TemporaryDirectory() as tmp:  # a character-level BPE vocabulary for printable ASCII
        chars = [chr(i) for i in range(33, 127)]
        vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
        vocab.update({c: i + 2 for i, c in enumerate(chars)})
        vocab.update({c + "</w>": i + 2 + len(chars) for i, c in enumerate(chars)})
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                                  model_max_length=16)
    scheduler = DDIMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet(seed),
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return pipe, unet(seed + 1), ["epsilon", "epsilon"]


def make_tiny_targets(folder, n=4, size=8, seed=0):
    """A few random RGB images standing in for a user's target style."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"target_{i}.png")
    return folder


def fit_lam(pipe, fused, types, args, device, height, width):
    """Learn lam from target images by the exact DSM fit of the fused score in the VAE's latent space."""
    from PIL import Image

    if fused.config.get("addition_embed_type") is not None:
        raise SystemExit("--target-images supports SD 1.x/2.x UNets (SDXL needs added_cond_kwargs); "
                         "pass the condition to DiffusersScore yourself")
    files = sorted(f for f in Path(args.target_images).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {args.target_images}")
    images = [Image.open(f).convert("RGB") for f in files]
    pixels = pipe.image_processor.preprocess(images, height=height, width=width).to(device)
    g = torch.Generator(device).manual_seed(args.seed)
    latents = encode_images(pipe.vae, pixels.to(pipe.vae.dtype), generator=g).float()
    with torch.no_grad():
        prompt_embeds, _ = pipe.encode_prompt(args.prompt, device, 1, False)
    aux = [DiffusersScore(unet, pipe.scheduler, prediction_type=p, condition={"encoder_hidden_states": prompt_embeds})
           for unet, p in zip(fused.unets, types)]
    sde = aux[0].sde
    t_range = (sde.t_min, (args.fit_max_timestep + 1) * sde.t_min)
    result = fit_weights(aux, latents, sde, method="dsm", t_range=t_range, n_draws=args.fit_draws,
                         generator=torch.Generator(device).manual_seed(args.seed + 1),
                         batch_size=args.fit_batch_size)
    return result, len(files)


def merged_unet(unet_a, unet_b, lam):
    """Weight averaging (1 - lam) A + lam B, the baseline the paper compares the barycenter with."""
    merged = copy.deepcopy(unet_a)
    state_b = unet_b.state_dict()
    merged.load_state_dict({k: ((1 - lam) * v.float() + lam * state_b[k].float()).to(v.dtype)
                            for k, v in unet_a.state_dict().items()})
    return merged


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.tiny:
        pipe, unet_b, types = build_tiny(args.seed)
        if args.target_images is None:
            args.target_images = str(make_tiny_targets(out / "tiny_targets"))
        pipe, unet_b = pipe.to(device=device, dtype=dtype), unet_b.to(device=device, dtype=dtype)
    else:
        pipe, unet_b, types = load_models(args, dtype)
        pipe, unet_b = pipe.to(device), unet_b.to(device)
    pipe.set_progress_bar_config(disable=True)
    unet_a = pipe.unet
    fused = FusedUNet([unet_a, unet_b], [1.0, 0.0], prediction_type=types)
    pipe.unet = fused
    height = args.height or fused.config.sample_size * pipe.vae_scale_factor
    width = args.width or fused.config.sample_size * pipe.vae_scale_factor

    summary = {"prompt": args.prompt, "model_a": args.model_a, "model_b": args.model_b, "steps": args.steps,
               "guidance": args.guidance, "seed": args.seed, "device": str(device), "dtype": str(dtype),
               "tiny": args.tiny}
    lams = list(args.lam)
    if args.target_images:
        fit, n_targets = fit_lam(pipe, fused, types, args, device, height, width)
        learned = float(fit.lam[1])
        summary["fit"] = {"lam": fit.lam.tolist(), "loss": fit.loss, "seconds": round(fit.seconds, 3),
                          "n_targets": n_targets, "kkt_residual": fit.kkt_residual}
        print(f"learned lam from {n_targets} target images: {[round(v, 3) for v in fit.lam.tolist()]}")
        lams.append(learned)

    from diffusers.utils import make_image_grid

    def sample():
        g = torch.Generator(device).manual_seed(args.seed)  # same noise for every lam
        return pipe(args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
                    guidance_scale=args.guidance, num_images_per_prompt=args.n_images, generator=g,
                    height=height, width=width).images

    columns, merged_columns = [], []
    for lam in lams:
        pipe.unet = fused
        fused.set_lam([1.0 - lam, lam])
        images = sample()
        for i, image in enumerate(images):
            image.save(out / f"barycenter_lam{lam:.3f}_{i}.png")
        columns.append(images)
        if args.compare_merge:
            pipe.unet = merged_unet(unet_a, unet_b, lam)
            images = sample()
            for i, image in enumerate(images):
                image.save(out / f"merged_lam{lam:.3f}_{i}.png")
            merged_columns.append(images)
    pipe.unet = fused
    rows = [[col[i] for col in columns] for i in range(args.n_images)]
    rows += [[col[i] for col in merged_columns] for i in range(args.n_images)] if merged_columns else []
    grid = make_image_grid([im for row in rows for im in row], rows=len(rows), cols=len(lams))
    grid.save(out / "grid.png")
    summary.update({"lam": lams, "grid": str(out / "grid.png"), "grid_rows": len(rows),
                    "seconds": round(time.perf_counter() - start, 2)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'grid.png'} ({len(rows)} rows x {len(lams)} lam values) in {summary['seconds']} s")
    return summary


if __name__ == "__main__":
    main()
