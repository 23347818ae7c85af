"""scorefusion: fusing score-based generative models via KL barycenters.

Liu, Ye, Blanchet, Si, "ScoreFusion: Fusing Score-based Generative Models via
Kullback-Leibler Barycenters", AISTATS 2025 (arXiv 2406.19619).
"""

from .distributions import Gaussian, GaussianMixture, kl_gaussian
from .losses import dsm_loss
from .scores import AnalyticScore, FusedScore
from .sde import VESDE, VPSDE

__version__ = "0.1.0"

__all__ = [
    "AnalyticScore",
    "FusedScore",
    "Gaussian",
    "GaussianMixture",
    "VESDE",
    "VPSDE",
    "dsm_loss",
    "kl_gaussian",
]
