"""How often chapter 08's IWAE exercise test would fail a correct solution by chance.

The test compares the mean over 100 test images of a student's K = 1 importance-weighted bound
(one draw of z per image, an unbiased ELBO estimate) with ``sd.elbo`` (64 draws). Both are Monte
Carlo estimates, so their difference D is random even for a correct solution. This script draws D
over many independent generator seeds with the reference solution on the chapter's seed-0 VAE of
the "normal" regime (trained, or loaded from ``$SCOREFUSION_CACHE``, exactly as the chapter does),
and prints its mean, standard deviation and excess kurtosis, and the two-sided failure probability
of the tolerance under a normal law,

.. math:: P(|D| > \\tau) = 2\\,\\Phi(-\\tau / \\mathrm{sd}(D)),

also with the upper 99.9% confidence limit of sd(D) in place of sd(D). It does the same for the
second assertion's gap ``iwae(K=64) - elbo``, which must stay above 0.

Run::

    python scripts/iwae_tolerance.py            # the full run's VAE (about 2 minutes on one core)
    python scripts/iwae_tolerance.py --fast     # the fast mode's VAE
"""

import argparse
import math
from pathlib import Path

import jupytext
import numpy as np
import torch
from scipy import stats

from lab import synthetic as lab_sd
from scorefusion.related import synthetic_data as sd

SIZES = {"fast": {"n_train": 100, "vae_steps": 1200}, "full": {"n_train": 150, "vae_steps": 3000}}  # chapter 08


def reference_iwae_bound():
    """The exercise's reference solution, executed from chapter 08's solution cell (its only copy)."""
    chapter = jupytext.read(Path(__file__).resolve().parents[1] / "notebooks" / "08_training_on_generated_data.md")
    cell = next(c for c in chapter.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex-08-iwae-solution")
    namespace = {"torch": torch}
    exec(cell.source, namespace)  # noqa: S102 -- the repository's own chapter, not outside input
    return namespace["iwae_bound"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the fast mode's VAE")
    parser.add_argument("--seeds", type=int, default=2000, help="independent repetitions")
    parser.add_argument("--tolerance", type=float, default=0.75, help="the test's tolerance in nats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = SIZES["fast" if args.fast else "full"]
    train_all, test = sd.digits_unit(n_test=300, generator=torch.Generator().manual_seed(0))
    vae = lab_sd.trained_vae("normal", train_all[: size["n_train"]], 0, steps=size["vae_steps"], batch=50,
                             n_train=size["n_train"])
    x = test[:100]
    iwae_bound = reference_iwae_bound()
    diff, gap = [], []
    with torch.no_grad():
        for r in range(args.seeds):
            one, many, ref = (torch.Generator().manual_seed(10_000 + 3 * r + k) for k in range(3))
            ref_mean = float(sd.elbo(vae, x, n_samples=64, generator=ref).mean())
            diff.append(float(iwae_bound(vae, x, 1, one).mean()) - ref_mean)
            gap.append(float(iwae_bound(vae, x, 64, many).mean()) - ref_mean)
    diff, gap = np.array(diff), np.array(gap)
    sd_d = diff.std(ddof=1)
    sd_upper = sd_d * math.sqrt((len(diff) - 1) / stats.chi2.ppf(0.001, len(diff) - 1))
    print(f"{'fast' if args.fast else 'full'} VAE, {args.seeds} seeds")
    print(f"D = iwae(K=1) - elbo: mean {diff.mean():.4f}, sd {sd_d:.4f} (99.9% upper limit {sd_upper:.4f}), "
          f"excess kurtosis {stats.kurtosis(diff):.2f}, max |D| {np.abs(diff).max():.3f}")
    for name, s in (("sd", sd_d), ("upper limit", sd_upper)):
        z = args.tolerance / s
        print(f"tolerance {args.tolerance} = {z:.2f} x {name}: P(fail) = {2 * stats.norm.sf(z):.1e}")
    print(f"iwae(K=64) - elbo: mean {gap.mean():.4f}, sd {gap.std(ddof=1):.4f}, min {gap.min():.3f}, "
          f"max {gap.max():.3f} ({gap.mean() / gap.std(ddof=1):.1f} sd above 0)")


if __name__ == "__main__":
    main()
