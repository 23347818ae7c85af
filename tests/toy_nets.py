"""Small networks that several test files share."""

import torch


class TinyScore(torch.nn.Module):
    """A linear time-scaled score network on R^2: modules of one architecture for FusedScore."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x, t):
        return self.lin(x) * t[:, None]
