r"""Summaries over training seeds (or test images): mean and standard error, paired differences.

Shared by the chapters that rank methods (09, 10): a ranking is stated only where the mean
difference lies more than two standard errors from zero (:func:`beyond`).
"""

import math

import numpy as np


def mean_se(values, axis=0):
    r"""Mean and standard error along ``axis`` (over seeds, or over test images).

    .. math:: \bar v = \frac1S \sum_s v_s, \qquad \mathrm{SE} = \sqrt{\frac{\sum_s (v_s - \bar v)^2}{S (S - 1)}}

    Parameters
    ----------
    values : array_like with S >= 2 finite entries along ``axis``
    axis : int, default 0

    Returns
    -------
    (mean, se) : floats for 1-D input, arrays otherwise
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or not -v.ndim <= axis < v.ndim or v.shape[axis] < 2:
        raise ValueError(f"values must hold at least 2 entries along axis {axis}, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    mean, se = v.mean(axis), v.std(axis=axis, ddof=1) / math.sqrt(v.shape[axis])
    return (float(mean), float(se)) if v.ndim == 1 else (mean, se)


def paired_difference(a, b, axis=0):
    r"""Mean and standard error of the paired differences :math:`a_s - b_s`.

    .. math:: \bar d = \frac1S \sum_s (a_s - b_s), \qquad \mathrm{SE}(\bar d) = \mathrm{sd}(a - b) / \sqrt S

    Pairing removes what the two share in each seed (data, sources, the evaluation's random
    numbers) from the standard error.

    Parameters
    ----------
    a, b : array_like of one shape, S >= 2 entries along ``axis``
    axis : int, default 0

    Returns
    -------
    (mean, se) : as :func:`mean_se`
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape (one value per seed each), got {a.shape} and {b.shape}")
    return mean_se(a - b, axis)


def beyond(mean, se, k=2.0):
    r"""True where a mean difference lies more than ``k`` standard errors from zero.

    .. math:: |\bar d| > k\, \mathrm{SE}

    Parameters
    ----------
    mean, se : float or array
    k : float, default 2

    Returns
    -------
    bool or bool array
    """
    return np.abs(mean) > k * np.asarray(se)
