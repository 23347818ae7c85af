"""scorefusion: fusing score-based generative models via KL barycenters.

Liu, Ye, Blanchet, Si, "ScoreFusion: Fusing Score-based Generative Models via
Kullback-Leibler Barycenters", AISTATS 2025 (arXiv 2406.19619).

Modules: ``distributions`` (closed-form densities), ``barycenter`` (KL
barycenters), ``sde`` (forward processes), ``scores`` (analytic and fused
scores), ``schedule`` (time-dependent weights), ``losses`` (DSM), ``fusion``
(learning the weights), ``metrics`` (TV, W1, KL), ``seeding`` (seeds from named
keys), ``data`` (presets and digits), ``cache`` (trained-model cache), and, importing torch networks,
``nets``, ``train``, ``sampling``.
"""

from .barycenter import GeometricMixture, kl_barycenter
from .distributions import Gaussian, GaussianMixture, kl_gaussian
from .fusion import (
    FitResult,
    bound_data_term,
    dsm_quadratic,
    fit_weight_schedule,
    fit_weights,
    ism_quadratic,
)
from .losses import dsm_loss
from .metrics import kl_mc, tv_distance, tv_histogram, w1_distance
from .schedule import WeightSchedule
from .scores import AnalyticScore, FusedScore
from .sde import SDE, VESDE, VPSDE, VPTypeSDE
from .seeding import seed_for

__version__ = "0.1.0"

__all__ = [
    "SDE",
    "VESDE",
    "VPSDE",
    "AnalyticScore",
    "FitResult",
    "FusedScore",
    "Gaussian",
    "GaussianMixture",
    "GeometricMixture",
    "VPTypeSDE",
    "WeightSchedule",
    "bound_data_term",
    "dsm_loss",
    "dsm_quadratic",
    "fit_weight_schedule",
    "fit_weights",
    "ism_quadratic",
    "kl_barycenter",
    "kl_gaussian",
    "kl_mc",
    "seed_for",
    "tv_distance",
    "tv_histogram",
    "w1_distance",
]
