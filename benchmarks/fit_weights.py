"""Fitting lam on the paper's 1-D preset: the SGD recipe, the exact DSM and ISM fits, the all-time fits and
the weight schedule; and the simplex solver against SciPy's SLSQP up to K = 64 models.

Closed-form auxiliary scores, target n = 1024, 20 seeds. Prints, per method, the
median seconds per fit, the mean and spread of lam_hat[0], and the DSM loss at
lam_hat on one common fresh evaluation draw; then the ratios measured in this run.
The overhead of the ISM fit over one bare pass of the scores and their divergences is
measured twice: with the closed-form scores (microseconds of work per pass, so the
solver's fixed cost shows) and with two small ScoreMLP networks (untrained: the
weights do not change the cost), where the passes dominate as they do in practice.

The all-time fits (``weighting="likelihood"``: ISM on 32 Gauss-Legendre nodes in log t, DSM
on stratified importance draws; DSM with ``weighting="std2"``) and ``fit_weight_schedule``
(8 bins, 8 nodes each) over t in (1e-3, T]: median seconds per fit, the spread of lam_1
over the seeds (for the schedule: per bin), and the exact data term of the likelihood bound
(``bound_data_term`` with the target's own score, on one common evaluation set and common
time nodes) at the fitted weights, averaged over the seeds.

The solver: random positive-definite problems (G = A^T A, A of shape (2K, K)), K = 2..64,
median over problems of the best of 5 CPU times, against SLSQP (ftol 1e-14), with the
largest difference of the minimisers.
Run: ``python benchmarks/fit_weights.py [--seeds 20]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from scipy.optimize import minimize

import scorefusion as sf
from scorefusion.data import paper_1d
from scorefusion.fusion import PAPER_T_RANGE, minimize_quadratic_on_simplex
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


def all_time_rows(aux, data, sde, target):
    """Seconds per fit, lam_1 spread and the exact bound's data term of the all-time fits and the schedule."""
    x_eval = target.sample(4096, generator=torch.Generator().manual_seed(20_000))
    edges = np.geomspace(1e-3, sde.T, 9)

    def data_term(lam):  # every fit on the same nodes and draws: constant weights as a flat schedule
        lam = lam if isinstance(lam, sf.WeightSchedule) else sf.WeightSchedule(edges, lam.expand(8, -1))
        return sf.bound_data_term(aux, lam, x_eval, sde, target_score=sf.AnalyticScore(target, sde),
                                  generator=torch.Generator().manual_seed(20_001))

    fits = {"ism-all (likelihood)": lambda x, g: sf.fit_weights(aux, x, sde, weighting="likelihood", generator=g),
            "dsm-all (likelihood)": lambda x, g: sf.fit_weights(aux, x, sde, method="dsm", weighting="likelihood",
                                                               generator=g),
            "dsm-all (std2)": lambda x, g: sf.fit_weights(aux, x, sde, method="dsm", weighting="std2", generator=g),
            "ism (t = 1e-4)": lambda x, g: sf.fit_weights(aux, x, sde, generator=g)}
    rows = {}
    for name, fit in fits.items():
        seconds, lams = [], []
        for seed, x0 in enumerate(data):
            res = fit(x0, torch.Generator().manual_seed(seed))
            seconds.append(res.seconds)
            lams.append(res.lam)
        lams = torch.stack(lams)
        rows[name] = {"seconds": statistics.median(seconds), "lam_mean": lams[:, 0].mean().item(),
                      "lam_std": lams[:, 0].std().item(), "bound": statistics.mean(data_term(lam) for lam in lams)}
    seconds, schedules = [], []
    for seed, x0 in enumerate(data):
        start = time.perf_counter()
        schedules.append(sf.fit_weight_schedule(aux, x0, sde, generator=torch.Generator().manual_seed(seed)))
        seconds.append(time.perf_counter() - start)
    per_bin = torch.stack([s.lam[:, 0] for s in schedules])
    rows["schedule (8 bins)"] = {"seconds": statistics.median(seconds), "lam_mean": per_bin.mean(0).tolist(),
                                 "lam_std": per_bin.std(0).tolist(),
                                 "bound": statistics.mean(data_term(s) for s in schedules)}
    return rows


def solver_rows(ks=(2, 4, 8, 16, 32, 64), problems=10):
    """Median CPU seconds (best of 5) of minimize_quadratic_on_simplex and of SLSQP, and the largest |difference|."""
    rng = np.random.default_rng(0)
    rows = {}
    for k in ks:
        ours, theirs, diff = [], [], 0.0
        for _ in range(problems):
            a = rng.normal(size=(2 * k, k))
            G, b = a.T @ a, rng.normal(size=k) * 5

            def slsqp(G=G, b=b, k=k):
                return minimize(lambda v: v @ G @ v - 2 * b @ v, np.full(k, 1.0 / k), jac=lambda v: 2 * (G @ v - b),
                                method="SLSQP", bounds=[(0.0, 1.0)] * k,
                                constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1.0,
                                              "jac": lambda v: np.ones(k)}],
                                options={"ftol": 1e-14, "maxiter": 2000}).x

            times = {}
            for name, fn in (("ours", lambda G=G, b=b: minimize_quadratic_on_simplex(G, b)[0]), ("slsqp", slsqp)):
                best = np.inf
                for _ in range(5):
                    start = time.process_time()
                    out = fn()
                    best = min(best, time.process_time() - start)
                times[name] = (best, out)
            ours.append(times["ours"][0])
            theirs.append(times["slsqp"][0])
            diff = max(diff, float(np.abs(times["ours"][1] - times["slsqp"][1]).max()))
        rows[k] = (statistics.median(ours), statistics.median(theirs), diff)
    return rows


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

    print(f"\nall-time fits over t in (1e-3, T], same data; bound = exact data term of the likelihood bound "
          f"(common evaluation set, {args.seeds} seeds)")
    print(f"{'method':<22} {'median s/fit':>13} {'mean lam_1':>11} {'std lam_1':>10} {'bound data term':>16}")
    new = all_time_rows(aux, data, sde, preset.target)
    for name, r in new.items():
        if name.startswith("schedule"):
            continue
        print(f"{name:<22} {r['seconds']:>13.5f} {r['lam_mean']:>11.4f} {r['lam_std']:>10.4f} {r['bound']:>16.5f}")
    sched = new["schedule (8 bins)"]
    print(f"{'schedule (8 bins)':<22} {sched['seconds']:>13.5f} {'per bin':>11} {max(sched['lam_std']):>10.4f} "
          f"{sched['bound']:>16.5f}")
    print("  schedule lam_1 per bin, mean: " + " ".join(f"{v:.3f}" for v in sched["lam_mean"]))
    print("  schedule lam_1 per bin, std:  " + " ".join(f"{v:.3f}" for v in sched["lam_std"]))
    print(f"  ism-all time / ism time     = {new['ism-all (likelihood)']['seconds'] / rows['ism']['seconds']:8.1f}x")
    print(f"  schedule time / ism time    = {sched['seconds'] / rows['ism']['seconds']:8.1f}x")

    print("\nsimplex solver: random positive-definite problems, median CPU time (best of 5)")
    print(f"{'K':>3} {'ours ms':>9} {'SLSQP ms':>9} {'ratio':>7} {'max |lam - lam_SLSQP|':>22}")
    for k, (ours, theirs, diff) in solver_rows().items():
        print(f"{k:>3} {ours * 1e3:>9.3f} {theirs * 1e3:>9.3f} {theirs / ours:>7.1f} {diff:>22.1e}")


if __name__ == "__main__":
    main()
