"""Every claim the book makes, as a check that can fail.

Each module ``theory_checks/<id>.py`` defines ``CLAIM = Claim(...)`` whose
``run(fast)`` measures a number and compares it with a tolerance. Run them all
with ``python -m theory_checks [--fast] [--only ID ...] [--json FILE]``; the
notebooks show the table for their chapter with :func:`run_claims`.
"""

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm


@dataclass
class Result:
    """What a check measured.

    Attributes
    ----------
    measured : float
        The number the claim is judged on.
    tolerance : float
        The bound it must respect (the comparison is stated in ``Claim.statement``).
    passed : bool
    details : dict
        Further measured numbers worth reporting.
    """

    measured: float
    tolerance: float
    passed: bool
    details: dict = field(default_factory=dict)


@dataclass
class Claim:
    """A claim of the paper or the book, with the code that checks it."""

    id: str
    statement: str
    reference: str
    chapter: str
    run: Callable[[bool], Result]


def all_claims():
    """Every claim, keyed by id, in module order."""
    claims = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        claim = getattr(module, "CLAIM", None)
        if claim is not None:
            claims[claim.id] = claim
    return claims


def run_claims(ids=None, chapter=None, fast=True, progress=False):
    """Run the chosen claims (all by default, or those of one chapter).

    ``progress=True`` shows a tqdm bar on stderr naming the claim that runs (a
    full-size run takes tens of minutes on two cores).

    Returns
    -------
    list of (Claim, Result, seconds)
    """
    claims = all_claims()
    if ids is not None:
        unknown = [i for i in ids if i not in claims]
        if unknown:
            raise ValueError(f"unknown claim ids {unknown}; known: {sorted(claims)}")
        chosen = [claims[i] for i in ids]
    else:
        chosen = [c for c in claims.values() if chapter is None or c.chapter == chapter]
    rows = []
    bar = tqdm(chosen, disable=not progress, desc="theory checks", unit="claim")
    for claim in bar:
        bar.set_postfix_str(claim.id)
        start = time.perf_counter()
        result = claim.run(fast)
        rows.append((claim, result, time.perf_counter() - start))
    return rows


def format_table(rows):
    """One line per claim: id, measured, tolerance, pass, seconds."""
    lines = [f"{'claim':<34} {'measured':>12} {'tolerance':>12}  {'pass':<5} {'s':>6}"]
    for claim, result, seconds in rows:
        lines.append(f"{claim.id:<34} {result.measured:>12.4g} {result.tolerance:>12.4g}  "
                     f"{'yes' if result.passed else 'NO':<5} {seconds:>6.1f}")
    return "\n".join(lines)
