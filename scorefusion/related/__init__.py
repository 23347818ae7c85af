"""Systems beside ScoreFusion, at small scale (PAPERS.md sections 2-4).

* :mod:`~scorefusion.related.synthetic_data` -- training a VAE on a diffusion model's samples
  (Xiao, Zenn and Bamler, 2023, "DMaaPx").
* :mod:`~scorefusion.related.merging` -- data-free merging by model rooting (Avrahami et al.,
  "GAN Cocktail", ECCV 2022), with score models.
* :mod:`~scorefusion.related.gcd` -- generalized contrastive divergence: an energy and a diffusion
  sampler trained jointly (Yoon et al., 2023).
"""

from . import gcd, merging, synthetic_data

__all__ = ["gcd", "merging", "synthetic_data"]
