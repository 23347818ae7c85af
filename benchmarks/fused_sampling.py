"""Fused-score throughput: FusedScore's one batched torch.func call against a Python loop over the nets.

ScoreFusion evaluates s_lam(x, t) = sum_i lam_i s_i(x, t) at every step of the
sampler. The official code loops over the K auxiliary networks; FusedScore
stacks their parameters (torch.func.stack_module_state) and evaluates all K in
one vmap call. For K = 2, 4, 8 same-architecture ScoreUNets (sizes from
lab.digits.scale_config(device)), this prints the median time of
one fused-score evaluation of a batch both ways, measured interleaved in one
run (lab.scaling.time_fused_vs_loop), and their ratio.
Goals: batched >= 2.5x the loop on a GPU; not slower on CPU.

Run: ``python benchmarks/fused_sampling.py [--device cpu|cuda] [--batch N] [--repeats R] [--bf16]``.
"""

import argparse

import torch

import scorefusion as sf
from lab.digits import build_unet, scale_config
from lab.scaling import time_fused_vs_loop


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="images per evaluation (default 1024 on CUDA, 128 on CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per variant (default 50 CUDA, 15 CPU)")
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8], help="numbers of auxiliary nets")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = scale_config(device.type)
    batch = args.batch or (1024 if device.type == "cuda" else 128)
    repeats = args.repeats or (50 if device.type == "cuda" else 15)
    bf16 = args.bf16 and device.type == "cuda"
    sde = sf.VESDE(25.0)
    torch.manual_seed(0)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, 1, config.image_size, config.image_size, generator=g, device=device)
    t = torch.rand(batch, generator=g, device=device) * 0.999 + 1e-3

    rows = []
    for k in args.ks:
        nets = [build_unet(config, sde).to(device).eval() for _ in range(k)]
        rows.append(time_fused_vs_loop(nets, x, t, repeats=repeats,
                                       autocast_dtype=torch.bfloat16 if bf16 else None))

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"fused score s_lam(x, t): K ScoreUNets (base {config.base}), images {config.image_size}x{config.image_size}, "
          f"batch {batch}, {where}{', bf16 autocast' if bf16 else ''}; median of {repeats} interleaved calls")
    print(f"{'K':>3} {'batched ms':>11} {'loop ms':>9} {'loop/batched':>13} {'batched img/s':>14} {'max |diff|':>11}")
    for r in rows:
        print(f"{r.k:>3} {r.batched_s * 1e3:>11.2f} {r.loop_s * 1e3:>9.2f} {r.speedup:>12.2f}x "
              f"{r.batch / r.batched_s:>14.0f} {r.max_abs_diff:>11.1e}")
    print("ratios measured in this run (loop time / batched time): "
          + ", ".join(f"K={r.k}: {r.speedup:.2f}x" for r in rows))


if __name__ == "__main__":
    main()
