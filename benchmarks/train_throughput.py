"""Training throughput of ScoreUNet: images/s of DSM training steps, fp32 eager vs bf16 autocast (+ torch.compile).

One training step is what ``scorefusion.train.train_score_model`` does per
mini-batch: denoising score matching loss (``scorefusion.losses.dsm_loss``),
backward, Adam step, EMA update. Variants, measured one after the other in one
run on the same model size and batch:

* ``fp32 eager``: float32, contiguous memory, no compilation (the only variant on CPU);
* ``bf16 eager``: bf16 autocast and channels-last images (CUDA only);
* ``bf16 compiled``: the same with ``torch.compile`` of the model (CUDA only; off with ``--no-compile``).

bf16 autocast is a CUDA path here (the library enables it only on CUDA); on
CPU the script measures fp32 and says so. Sizes: CUDA 32x32 images, base 64,
channel_mult (1, 2, 2), batch 256; CPU 8x8 images, base 16, batch 64 (runs in
well under a minute). It prints images/s per variant and the ratios to fp32
eager, measured in this run. On a shared machine the numbers are noisy.

Run: ``python benchmarks/train_throughput.py [--device cpu|cuda] [--batch N] [--steps S] [--no-compile]``.
"""

import argparse
import time

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import scorefusion as sf
from scorefusion.nets import ScoreUNet
from scorefusion.train import dsm_step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config, device, batch, steps, warmup, bf16, channels_last, compile):
    """Images per second of `steps` timed training steps after `warmup` untimed ones."""
    torch.manual_seed(0)
    sde = sf.VESDE(25.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = ScoreUNet(sde, channels=1, image_size=config["size"], base=config["base"],
                      channel_mult=config["mult"]).to(device, memory_format=fmt).train()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    net = torch.compile(model) if compile else model
    g = torch.Generator(device=device).manual_seed(0)
    data = torch.rand(batch, 1, config["size"], config["size"], generator=g, device=device)
    data = data.contiguous(memory_format=fmt)

    def step():  # the library's own training step
        return dsm_step(net, model, ema, opt, data, sde, generator=g, bf16=bf16)

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError("the loss is not finite")
    return batch * steps / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="images per step (default 256 CUDA, 64 CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 50 CUDA, 8 CPU)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    config = {"size": 32, "base": 64, "mult": (1, 2, 2)} if cuda else {"size": 8, "base": 16, "mult": (1, 2)}
    batch = args.batch or (256 if cuda else 64)
    steps = args.steps or (50 if cuda else 8)
    warmup = 10 if cuda else 2

    variants = [("fp32 eager", False, False, False)]
    if cuda:
        variants.append(("bf16 eager", True, True, False))
        if not args.no_compile:
            variants.append(("bf16 compiled", True, True, True))
    rows = []
    for name, bf16, channels_last, compile in variants:
        rows.append((name, measure(config, device, batch, steps, warmup + (5 if compile else 0), bf16,
                                   channels_last, compile)))

    where = torch.cuda.get_device_name(device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"DSM training steps of ScoreUNet (base {config['base']}, channel_mult {config['mult']}), "
          f"images {config['size']}x{config['size']}, batch {batch}, {where}; {steps} timed steps per variant")
    print(f"{'variant':<14} {'images/s':>10} {'vs fp32':>8}")
    for name, rate in rows:
        print(f"{name:<14} {rate:>10.0f} {rate / rows[0][1]:>7.2f}x")
    if not cuda:
        print("bf16 autocast and torch.compile are the CUDA path (train_score_model enables bf16 only on CUDA); "
              "on CPU only fp32 eager is measured.")
    else:
        print("ratios measured in this run (images/s over fp32 eager): "
              + ", ".join(f"{name}: {rate / rows[0][1]:.2f}x" for name, rate in rows[1:]))


if __name__ == "__main__":
    main()
