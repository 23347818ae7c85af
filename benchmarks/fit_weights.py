"""Fitting lam on the paper's 1-D preset: the SGD recipe against the exact DSM and ISM fits.

Closed-form auxiliary scores, target n = 1024, 20 seeds. Prints, per method, the
median seconds per fit, the mean and spread of lam_hat[0], and the DSM loss at
lam_hat on one common fresh evaluation draw; then the ratios measured in this run.
The overhead of the ISM fit over one bare pass of the scores and their divergences is
measured twice: with the closed-form scores (microseconds of work per pass, so the
solver's fixed cost shows) and with two small ScoreMLP networks (untrained: the
weights do not change the cost), where the passes dominate as they do in practice.
Run: ``python benchmarks/fit_weights.py [--seeds 20]``.
"""

import argparse
import statistics
import time

import torch

import scorefusion as sf
from scorefusion.data import paper_1d
from scorefusion.fusion import PAPER_T_RANGE
from scorefusion.nets import ScoreMLP


def interleaved_medians(fns, repeats):
    """Median seconds of each function, calls interleaved so machine noise hits all alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n", type=int, default=1024)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    preset, sde = paper_1d(), sf.VESDE(25.0)
    aux = [sf.AnalyticScore(d, sde) for d in preset.aux]
    data = [preset.target.sample(args.n, generator=torch.Generator().manual_seed(s)) for s in range(args.seeds)]
    # one common evaluation draw: 50 fresh noise draws per point of a fresh target sample
    x_eval = preset.target.sample(args.n, generator=torch.Generator().manual_seed(10_000))
    G, b, c = sf.dsm_quadratic(aux, x_eval, sde, t_range=PAPER_T_RANGE, n_draws=50,
                               generator=torch.Generator().manual_seed(10_001))

    rows = {}
    for method in ("sgd", "dsm", "ism"):
        seconds, lams = [], []
        for seed, x0 in enumerate(data):
            fit = sf.fit_weights(aux, x0, sde, method=method, generator=torch.Generator().manual_seed(seed))
            seconds.append(fit.seconds)
            lams.append(fit.lam)
        lams = torch.stack(lams)
        eval_loss = [float(lam @ G @ lam - 2 * b @ lam + c) for lam in lams]
        rows[method] = {"seconds": statistics.median(seconds), "lam_mean": lams[:, 0].mean().item(),
                        "lam_std": lams[:, 0].std().item(), "eval_loss": statistics.mean(eval_loss)}

    x0 = data[0]
    t = torch.full((args.n,), 1e-4, dtype=torch.float64)
    bare, ism_time = interleaved_medians([lambda: [s.score_and_divergence(x0, t) for s in aux],
                                          lambda: sf.fit_weights(aux, x0, sde)], 200)

    torch.manual_seed(0)
    nets = [ScoreMLP(sde, 1, hidden=128, depth=3).eval() for _ in aux]
    x0f, tf = x0.float(), t.float()

    def bare_nets():  # each network's score and, in 1-D, its exact divergence d s / d x
        for net in nets:
            xg = x0f.detach().requires_grad_(True)
            torch.autograd.grad(net(xg, tf).sum(), xg)

    bare_net, ism_net = interleaved_medians([bare_nets, lambda: sf.fit_weights(nets, x0f, sde)], 50)

    print(f"paper 1-D preset, n = {args.n}, {args.seeds} seeds, closed-form auxiliary scores, 1 thread")
    print(f"{'method':<6} {'median s/fit':>13} {'mean lam_1':>11} {'std lam_1':>10} {'DSM loss (eval)':>16}")
    for method, r in rows.items():
        print(f"{method:<6} {r['seconds']:>13.5f} {r['lam_mean']:>11.4f} {r['lam_std']:>10.4f} {r['eval_loss']:>16.6f}")
    print("ratios measured in this run:")
    for method in ("dsm", "ism"):
        print(f"  sgd time / {method} time       = {rows['sgd']['seconds'] / rows[method]['seconds']:8.1f}x")
    print(f"  DSM spread / ISM spread     = {rows['dsm']['lam_std'] / rows['ism']['lam_std']:8.1f}x")
    print(f"  ism fit / bare forward+div  = {ism_time / bare:8.2f}x  ({ism_time * 1e3:.2f} ms vs {bare * 1e3:.2f} ms)"
          "  closed-form scores")
    print(f"  ism fit / bare forward+div  = {ism_net / bare_net:8.2f}x  ({ism_net * 1e3:.2f} ms vs "
          f"{bare_net * 1e3:.2f} ms)  two ScoreMLPs (hidden 128, depth 3)")
    print(f"  eval loss ism - sgd         = {rows['ism']['eval_loss'] - rows['sgd']['eval_loss']:+.2e}")


if __name__ == "__main__":
    main()
