"""``sampling.log_likelihood(probes=...)``: given Hutchinson probes replace the drawn ones.

This is what pairs the bits/dim of several models stacked in one batch (``lab.digits.bits_per_image``):
every block gets the same probes, so the same model in two blocks gets the same numbers.
"""

import pytest
import torch

import scorefusion as sf
from scorefusion import sampling
from scorefusion.divergence import draw_probes

VP = sf.VPSDE()
GAUSS = sf.Gaussian(torch.linspace(-1.0, 1.0, 20, dtype=torch.float64),
                    torch.diag(torch.linspace(0.5, 2.0, 20, dtype=torch.float64)) + 0.1)

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_given_probes_equal_the_drawn_ones_and_pair_stacked_blocks():
    score = sf.AnalyticScore(GAUSS, VP)
    x0 = GAUSS.sample(6, generator=gen(0))
    drawn = sampling.log_likelihood(score, x0, VP, n_probes=2, generator=gen(1), rtol=1e-4, atol=1e-4)
    probes = draw_probes(x0.shape, 2, gen(1))
    given = sampling.log_likelihood(score, x0, VP, probes=probes, rtol=1e-4, atol=1e-4)
    assert torch.equal(drawn, given)  # the same probes, drawn in the same order: the same numbers
    # two copies of the batch with one probe each: both halves identical (paired), unlike with fresh probes
    stacked = sampling.log_likelihood(score, x0.repeat(2, 1), VP, probes=[probes[0].repeat(2, 1)], rtol=1e-4,
                                      atol=1e-4)
    assert torch.equal(stacked[:6], stacked[6:])
    fresh = sampling.log_likelihood(score, x0.repeat(2, 1), VP, generator=gen(1), rtol=1e-4, atol=1e-4)
    assert not torch.equal(fresh[:6], fresh[6:])


@pytest.mark.parametrize("probes, match", [
    ([], "probes"),
    ([torch.ones(6, 19)], "probes"),
    (torch.ones(6, 20), "probes"),
    ([torch.ones(6, 20), "one"], "probes"),
])
def test_bad_probes_name_the_argument(probes, match):
    x0 = torch.zeros(6, 20, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        sampling.log_likelihood(sf.AnalyticScore(GAUSS, VP), x0, VP, probes=probes)


def test_probes_refused_with_the_exact_divergence():
    x0 = torch.zeros(3, 20, dtype=torch.float64)
    with pytest.raises(ValueError, match="probes"):
        sampling.log_likelihood(sf.AnalyticScore(GAUSS, VP), x0, VP, divergence="exact",
                                probes=[torch.ones(3, 20)])
