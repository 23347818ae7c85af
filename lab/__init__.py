"""The book's experiments, one module per experiment, above the ``scorefusion`` library.

Notebooks and theory checks import these modules so that a number in a chapter and the number a
claim asserts come from one piece of code; ``scorefusion`` itself never imports ``lab``.

* :mod:`lab.gaussians`: random Gaussian test problems and the sample-only Gaussian baseline
  (chapters 01, 05).
* :mod:`lab.paper_1d`: the paper's 1-D experiment with trained networks, in the official code's
  standardised geometry and in raw coordinates, with the floor of each (chapter 03).
* :mod:`lab.official`: the numbers and settings of the official code, each with its file and cell or
  line (chapters 03, 06).
* :mod:`lab.dimension_free`: the dimension-free TV experiment (chapter 05).
* :mod:`lab.digits`: image fusion on handwritten digits (chapters 06-09).
* :mod:`lab.scaling`: the stacked fused score against the loop (chapter 07, benchmarks).
* :mod:`lab.merging`: data-free merging by rooting against naive averaging, scratch training and
  ScoreFusion, at one step budget, over training seeds (chapter 09).
* :mod:`lab.gcd`: generalized contrastive divergence against its baselines, learning curves over
  training seeds (chapter 10).
* :mod:`lab.summary`: means, paired standard errors and the 2-SE rule for rankings (chapters 09, 10).
"""
