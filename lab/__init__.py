"""The book's experiments, one module per experiment, above the ``scorefusion`` library.

Notebooks and theory checks import these modules so that a number in a chapter and the number a
claim asserts come from one piece of code; ``scorefusion`` itself never imports ``lab``.

* :mod:`lab.gaussians`: random Gaussian test problems and the sample-only Gaussian baseline
  (chapters 01, 05).
* :mod:`lab.paper_1d`: the paper's 1-D experiment with trained networks (chapter 03).
* :mod:`lab.dimension_free`: the dimension-free TV experiment (chapter 05).
* :mod:`lab.digits`: image fusion on handwritten digits (chapters 06-09).
* :mod:`lab.scaling`: the stacked fused score against the loop (chapter 07, benchmarks).
"""
