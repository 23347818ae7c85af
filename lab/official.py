r"""Numbers and settings taken from the official ScoreFusion code, each with its file and cell or line.

The paper's own tables could not be retrieved here; what the official code keeps
(junzeye/ScoreFusion, its single commit :data:`COMMIT`) is the reference the book
compares with. Every entry names the file, the notebook cell (the 0-based index
in the notebook's JSON ``cells`` list) or the source line, and what the number
measures. Numbers that the notebooks printed survive only as the text of their
progress bars, stored in the notebook's ``metadata.widgets`` state; the entry
then names the cell whose progress bar wrote them.

The official bits/dim are computed on images normalised as
:math:`x' = (x - 0.1307)/0.3081` (``src/datasets.py``, line 86), and the
change of variables back to pixel intensities in :math:`[0, 1]` is never
applied, so every official bits/dim exceeds the bits/dim of the same model on
:math:`[0, 1]` (the convention of the paper's metric) by

.. math:: \log_2 \frac{1}{0.3081} \approx 1.70 \text{ bits/dim}

(:data:`BPD_OFFSET`; :func:`corrected_bpd`).
"""

import math
from dataclasses import dataclass

REPOSITORY = "junzeye/ScoreFusion"
COMMIT = "aa542ae975e1c15a0cc9b0f2a542a371d6d92903"
"""The repository's only commit ("Upload codebase", 2025-03-09), read for this table."""

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
"""The normalisation of the official EMNIST data (``src/datasets.py``, line 86)."""

BPD_OFFSET = math.log2(1.0 / MNIST_STD)
r"""Bits/dim the official evaluation adds to every model: :math:`\log_2(1/0.3081) \approx 1.70`."""


@dataclass(frozen=True)
class OfficialNumber:
    """One number or setting of the official code.

    Attributes
    ----------
    key : str
    value : float or tuple of float
    file : str
        Path inside the repository.
    where : str
        Cell (0-based index of the notebook's ``cells``) or line(s) of the source.
    measures : str
        What the number is.
    """

    key: str
    value: object
    file: str
    where: str
    measures: str


_NB_1D = "notebooks/1D_experiments.ipynb"
_NB_EMNIST = "notebooks/EMNIST_experiments.ipynb"
_NB_FINETUNE = "notebooks/EMNIST_finetune_Baseline2.ipynb"
_HPC = "hpc_scripts/emnist_and_1d_train_and_eval/fusion_HD_NLL.py"

_LAMBDAS_INFO = {  # fusion_HD_NLL.py, lines 20-28, "entered from fusion training results"
    64: (0.199, 0.305, 0.279, 0.217),
    128: (0.187, 0.326, 0.267, 0.22),
    256: (0.182, 0.328, 0.284, 0.206),
    512: (0.181, 0.319, 0.285, 0.216),
    1024: (0.167, 0.345, 0.319, 0.170),
    4096: (0.183, 0.311, 0.294, 0.213),
    16384: (0.176, 0.310, 0.295, 0.220),
}

OFFICIAL = (
    OfficialNumber("1d.standardize", "per data set", "src/datasets.py", "lines 26-31 (make_mixture_data)",
                   "every 1-D data set (target, validation, test, each auxiliary's) is standardised by its own "
                   "sample mean and std; samples go back with the target's (1D notebook, cells 21-26)"),
    OfficialNumber("1d.lam", (0.5781, 0.4219), _NB_1D, "cell 26, line 6",
                   "fusion weights at n = 1024, hard-coded ('optimal lambdas obtained from Frank-Wolfe') and "
                   "sampled 10 times for the W1 of ScoreFusion"),
    OfficialNumber("1d.sgd_train_loss", 0.910906, _NB_1D, "cell 15 (progress bar, metadata.widgets)",
                   "last-batch small-t DSM loss (fusion_loss_fn) of the SGD weight fit"),
    OfficialNumber("1d.sgd_val_loss", 0.316148, _NB_1D, "cell 15 (progress bar, metadata.widgets)",
                   "last validation DSM loss over all times (loss_fn) of the SGD weight fit"),
    OfficialNumber("1d.batch", "min(n, 256)", _NB_1D, "cell 4, line 12",
                   "target batch: 'train_batch': TRAIN_SIZE if TRAIN_SIZE < 256 else 256; validation set n/4 "
                   "(line 2)"),
    OfficialNumber("1d.sgd", (0.1, 0.9, 100), _NB_1D, "cell 13, lines 3-5",
                   "SGD of the weight fit: learning rate, momentum, epochs"),
    OfficialNumber("1d.best_val_checkpoint", "kept", _NB_1D, "cell 14, lines 36-44 (fusion_train)",
                   "after every epoch the DSM loss over all times (loss_fn) on a validation batch; the weights are "
                   "saved when it improves"),
    OfficialNumber("fusion.logits_init", "torch.randn(K)", "src/model_1D.py", "line 146 (FusionNet)",
                   "initial softmax logits of the weights (also src/model_EMNIST.py, line 149)"),
    OfficialNumber("fusion.t_range", (1e-7, 1e-4), "src/model_1D.py", "line 202 (fusion_loss_fn)",
                   "t ~ h U[eps, 1], h = 1e-4, eps = 1e-3: the small-t weight-fit loss of the 1-D fit"),
    OfficialNumber("dsm.t_range", (1e-5, 1.0), "src/model_1D.py", "line 179 (loss_fn)",
                   "t ~ U[1e-5, 1]: the DSM loss over all times (networks, validation; src/model_EMNIST.py, line 186)"),
    OfficialNumber("sampler.steps", 1000, "src/samplers.py", "line 10 (num_steps), line 45 (eps = 1e-3)",
                   "Euler-Maruyama steps of every sample, down to t = 1e-3"),
    OfficialNumber("emnist.fit_t_range", (1e-5, 1.0), _NB_EMNIST, "cell 13, lines 29 and 40",
                   "the EMNIST weight fit uses loss_fn (all times) for training and validation, although the "
                   "notebook imports fusion_loss_fn (cell 4)"),
    OfficialNumber("emnist.sgd", (0.1, 0.9, 128, 128), _NB_EMNIST, "cell 13, lines 21-23; cell 6 (batch 2**7)",
                   "SGD of the EMNIST weight fit: learning rate, momentum, epochs, batch"),
    OfficialNumber("emnist.n_fusion_cell", 256, _NB_EMNIST, "cell 6 (TRAIN_TAR_SIZE = 2**8)",
                   "target training images of the notebook run whose bits/dim are stored"),
    OfficialNumber("emnist.bpd_fusion", 4.531535, _NB_EMNIST, "cell 24 (progress bar, metadata.widgets)",
                   "bits/dim of ScoreFusion on the target test images, normalised coordinates (+1.70)"),
    OfficialNumber("emnist.bpd_undertrained", 8.278847, _NB_EMNIST, "cell 24 (progress bar, metadata.widgets)",
                   "bits/dim of `undertrained_score`, a model the stored notebook never defines (cell 9 trains "
                   "`baseline` from scratch on the 256 images; `undertrained_score` appears only in cell 24 and a "
                   "commented line of cell 18), normalised coordinates (+1.70)"),
    OfficialNumber("emnist.bpd_finetune", 4.815172, _NB_FINETUNE, "cell 22 (progress bar, metadata.widgets)",
                   "bits/dim of auxiliary 2 (7:9 = 0.7/0.3, cell 11) fine-tuned on n = 64 target images (cell 4), "
                   "normalised coordinates (+1.70)"),
    OfficialNumber("emnist.bpd_plus_8", 8.0, _NB_EMNIST, "cell 23, lines 84-86 (ode_likelihood)",
                   "bpd = -log p(x') / (D ln 2) + 8 with x' the normalised image: the 1/0.3081 Jacobian is missing"),
) + tuple(
    OfficialNumber(f"emnist.lam.n{n}", lam, _HPC, f"lines 20-28 (lambdas_info, n = {n})",
                   "fusion weights of the four auxiliaries (7:9 = 0.1/0.9, 0.3/0.7, 0.7/0.3, 0.9/0.1)")
    for n, lam in _LAMBDAS_INFO.items()
)
"""The table, in the order the book quotes it."""

_BY_KEY = {entry.key: entry for entry in OFFICIAL}

OFFICIAL_LAM_1D = _BY_KEY["1d.lam"].value
"""(0.5781, 0.4219): the official 1-D weights at n = 1024."""


def official(key):
    """The entry of :data:`OFFICIAL` with this key (ValueError naming the known keys otherwise)."""
    if key not in _BY_KEY:
        raise ValueError(f"key must be one of {sorted(_BY_KEY)}, got {key!r}")
    return _BY_KEY[key]


def corrected_bpd(official_bpd):
    r"""An official bits/dim moved to pixel intensities in [0, 1]: :math:`b - \log_2(1/0.3081)`.

    .. math:: \mathrm{bpd}_{[0,1]} = \mathrm{bpd}_{\text{official}} - \log_2 \frac{1}{0.3081}

    since :math:`p_{[0,1]}(y) = p_{x'}(x')/0.3081^D` for :math:`y = 0.3081\,x' + 0.1307`.
    """
    value = float(official_bpd)
    if not math.isfinite(value):
        raise ValueError(f"official_bpd must be finite, got {official_bpd!r}")
    return value - BPD_OFFSET


def implied_share(lam, shares):
    r"""The class share of a weighted mixture of the auxiliaries' populations, :math:`\sum_i \lambda_i w_i`.

    For the EMNIST weights this is the 7-share the fused model would have if
    fusing mixed the auxiliaries' populations linearly (a barycenter does not,
    exactly; it is a summary of where the weights point).
    """
    lam, shares = tuple(float(v) for v in lam), tuple(float(v) for v in shares)
    if len(lam) != len(shares):
        raise ValueError(f"lam and shares must have the same length, got {len(lam)} and {len(shares)}")
    return sum(a * w for a, w in zip(lam, shares))


def format_official(keys=None):
    """The table as text: key, value, file, where (one line per entry; all entries by default)."""
    entries = OFFICIAL if keys is None else [official(k) for k in keys]
    lines = [f"{'key':<26} {'value':<30} {'file, cell or line'}"]
    for e in entries:
        value = e.value if isinstance(e.value, str) else repr(e.value)
        lines.append(f"{e.key:<26} {value:<30} {e.file}, {e.where}")
    return "\n".join(lines)
