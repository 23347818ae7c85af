"""Fixtures shared by the test files."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test with one intra-op torch thread.

    Tests of small models spend more time synchronising threads than computing; one thread is
    faster on a shared 2-core machine and matches the child processes of the DDP tests.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
