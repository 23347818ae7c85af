"""On the paper's 1-D preset, fits of lam over all times beat the small-time fits in the sampler's W1 and left-mode mass."""

from lab.weight_schedules import PRESET_SIZES, preset_rows
from scorefusion import VPSDE

from . import Claim, Result


def run(fast=True):
    sizes = PRESET_SIZES["fast" if fast else "full"]
    details, w1_ratios, left_ratios, bound_ok = {}, [], [], True
    for geometry in ("raw", "standardized"):
        rows = {r.fit: r for r in preset_rows(VPSDE(), geometry, **sizes)}
        bd = {f: rows[f].bound for f in "abcd"}
        bound_ok &= bd["d"] <= bd["c"] <= min(bd["a"], bd["b"])
        w1 = {f: rows[f].w1 for f in rows}
        left = {f: abs(rows[f].left - 0.6) for f in rows}
        w1_ratios.append(min(w1["c"], w1["d"]) / min(w1["a"], w1["b"]))
        left_ratios.append(min(left["c"], left["d"]) / min(left["a"], left["b"]))
        details.update({
            f"{geometry}: bound of a, b, c, d": tuple(bd[f] for f in "abcd"),
            f"{geometry}: W1 of a, b, c, d, oracle (raw units)": tuple(w1[f] for f in (*"abcd", "oracle")),
            f"{geometry}: TV of a, b, c, d, oracle": tuple(rows[f].tv for f in (*"abcd", "oracle")),
            f"{geometry}: left-mode mass of a, b, c, d, oracle (target 0.6)": tuple(rows[f].left
                                                                                 for f in (*"abcd", "oracle")),
            f"{geometry}: W1_d <= W1_c (not claimed: bounds within a few percent)": w1["d"] <= w1["c"],
        })
    measured = max(w1_ratios)
    details["W1 ratio best of (c, d) / best of (a, b), per geometry"] = tuple(w1_ratios)
    details["|left - 0.6| ratio best of (c, d) / best of (a, b), per geometry"] = tuple(left_ratios)
    passed = bound_ok and measured < 1.0 and max(left_ratios) < 1.0
    return Result(measured, 1.0, passed, details)


CLAIM = Claim(
    id="likelihood_bound_preset",
    statement="The paper's 1-D preset (target 0.6 N(-6, 0.8^2) + 0.4 N(6, 0.8^2)), raw and in the official "
              "per-set standardised geometry, exact auxiliary scores, VP SDE, Euler-Maruyama from common noise: "
              "with lam fitted by (a) ISM at t = 1e-4, (b) the paper's DSM, (c) the all-time likelihood ISM, "
              "(d) lam(t) on 8 bins, the bound (prior term + data term, on common time nodes and draws) is "
              "ordered d <= c <= min(a, b); the better all-time fit beats the better small-time fit in W1 and in "
              "the error of the left mode's mass (target 0.6). measured = the largest ratio of the W1s, per "
              "geometry, < 1. Between c and d, whose bounds differ by 0.4-2%, the order of the measured errors "
              "is reported, not claimed; so is the oracle (the target's exact score through the same sampler), "
              "the sampler's own error: with the fast mode's 200 steps its W1 can exceed a fit's.",
    reference="Song, Durkan, Murray, Ermon 2021a, Thm. 1; ScoreFusion Sec. 5.1 (the 1-D experiment)",
    chapter="04_sampling_the_barycenter",
    run=run,
)
