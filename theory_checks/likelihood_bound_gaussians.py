"""Fits of lam that minimise the likelihood bound give samplers closer to the target: exact Gaussian outputs."""

from lab.weight_schedules import GAUSSIAN_SIZES, gaussian_rows
from scorefusion import VPSDE

from . import Claim, Result

PAIRS = ("1-D pair, target p_lam*", "2-D pair, target p_lam*")
"""The problems on which lam(t) is claimed to beat the constant all-time fit (see the statement)."""


def run(fast=True):
    rows = gaussian_rows(VPSDE(), with_ode=True, **GAUSSIAN_SIZES["fast" if fast else "full"])
    by_case = {}
    for row in rows:
        by_case.setdefault(row.case, {})[row.fit] = row
    below_bound = max(r.kl_sde / r.bound for r in rows)  # Song et al. 2021a, Thm. 1: at most 1
    claimed, details, bound_order = [], {}, 0.0
    for case, fits in by_case.items():
        kl = {f: r.kl_sde for f, r in fits.items()}
        bd = {f: r.bound for f, r in fits.items()}
        bound_order = max(bound_order, bd["d"] / bd["c"], bd["c"] / min(bd["a"], bd["b"]))
        claimed.append(kl["c"] / min(kl["a"], kl["b"]))
        if case in PAIRS:
            claimed.append(kl["d"] / kl["c"])
        details.update({
            f"{case}: KL_sde of a, b, c, d": tuple(kl[f] for f in "abcd"),
            f"{case}: bound of a, b, c, d": tuple(bd[f] for f in "abcd"),
            f"{case}: KL_d/KL_c, KL_c/min(KL_a, KL_b)": (kl["d"] / kl["c"], kl["c"] / min(kl["a"], kl["b"])),
            f"{case}: bound/KL of c and d (the bound's slack)": (bd["c"] / kl["c"], bd["d"] / kl["d"]),
            f"{case}: order implied by the bound alone (bound_c < KL_a, bound_d < KL_c)": (bd["c"] < kl["a"],
                                                                                          bd["d"] < kl["c"]),
        })
    measured = max(claimed)
    library = max(abs(r.bound_mc / r.bound - 1) for r in rows)  # bound_data_term on target samples
    details["largest |library estimate / exact bound - 1|"] = library
    details["largest KL_sde / bound over fits (Thm. 1: <= 1)"] = below_bound
    details["largest bound_d/bound_c, bound_c/min(bound_a, bound_b)"] = bound_order
    passed = measured < 1.0 and bound_order <= 1.0 and below_bound <= 1.0 + 1e-6 and library < (0.15 if fast else 0.02)
    return Result(measured, 1.0, passed, details)


CLAIM = Claim(
    id="likelihood_bound_gaussians",
    statement="Exact Gaussian auxiliaries, VP SDE, three problems (1-D and 2-D pairs with the barycenter at "
              "(1/2, 1/2) as target, three 1-D auxiliaries with a target outside their family), lam fitted on "
              "2048 (full: 8192) target samples by (a) ISM at t = 1e-4, (b) the paper's DSM, (c) the all-time "
              "likelihood-weighted ISM, (d) lam(t) on 8 bins. The bound KL(p_T||prior) + 1/2 int g^2 "
              "E|s_lam - grad log p_t|^2 dt, computed exactly, lies above the exact KL of the reverse SDE's "
              "output for every fit (to 1e-6) and is ordered d <= c <= min(a, b) (the fits minimise estimates "
              "of it); the library's bound_data_term on 5000 (20000) fresh samples matches it within 15% (2%). The KL follows: KL_c < min(KL_a, KL_b) on all three problems and KL_d < KL_c on the two "
              "pairs; measured = the largest of these ratios, < 1. On the three-auxiliary problem the order of "
              "c and d is reported, not claimed: their bounds exceed their KLs more than ten-fold, so the bound does "
              "not order KLs that small (with other fit seeds KL_d exceeded KL_c there).",
    reference="Song, Durkan, Murray, Ermon 2021a, Thm. 1; ScoreFusion Sec. 4 (fitting lam at small t)",
    chapter="04_sampling_the_barycenter",
    run=run,
)
