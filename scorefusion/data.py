"""Data: the paper's presets and real data that ships offline."""

from dataclasses import dataclass

import torch

from .distributions import GaussianMixture


@dataclass
class Preset1D:
    """The 1-D experiment of the paper: a target mixture and two auxiliary mixtures."""

    target: GaussianMixture
    aux: list


def _mixture_1d(weights, means, std):
    return GaussianMixture(
        torch.tensor(weights, dtype=torch.float64),
        torch.tensor(means, dtype=torch.float64)[:, None],
        torch.full((len(means), 1, 1), std**2, dtype=torch.float64),
    )


def paper_1d():
    r"""The 1-D Gaussian-mixture preset of ScoreFusion (Liu et al., 2025, Sec. 5.1).

    .. math::

        p_{\mathrm{target}} = 0.6\,\mathcal N(-6, 0.8^2) + 0.4\,\mathcal N(6, 0.8^2), \quad
        p_1 = 0.5\,\mathcal N(-3, 1) + 0.5\,\mathcal N(10, 1), \quad
        p_2 = 0.7\,\mathcal N(-7, 1) + 0.3\,\mathcal N(9, 1).

    Returns
    -------
    Preset1D
        ``target`` and ``aux = [p_1, p_2]``, float64.
    """
    return Preset1D(
        target=_mixture_1d([0.6, 0.4], [-6.0, 6.0], 0.8),
        aux=[_mixture_1d([0.5, 0.5], [-3.0, 10.0], 1.0), _mixture_1d([0.7, 0.3], [-7.0, 9.0], 1.0)],
    )
