"""Fixtures shared by the test files.

The two book builds are session fixtures built once per process (``build_book.build_for_tests``)
into a folder that the build empties first. Under pytest-xdist (``-n``, see pyproject.toml) each
test that uses one, directly or through another fixture, gets the matching ``xdist_group`` mark
("book" or "book-full") here, so ``--dist loadgroup`` sends all of them to one worker and each
build runs once per session (two workers building into one folder would destroy each other's
build).
"""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book

BOOK_GROUPS = {"book": "book", "book_full": "book-full"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Before xdist's own hook, which turns the mark into the item's scheduling group.
    for item in items:
        groups = {group for name, group in BOOK_GROUPS.items() if name in item.fixturenames}
        if len(groups) > 1:
            raise pytest.UsageError(f"{item.nodeid} uses both book builds: split the test, "
                                    "each build belongs to one xdist group")
        for group in groups:
            item.add_marker(pytest.mark.xdist_group(group))


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


@pytest.fixture(scope="session")
def book():
    """The whole book in fast mode, built from an empty ``_build/test-book`` (mark: "book")."""
    return build_book.build_for_tests(str(ROOT), "fast")


@pytest.fixture(scope="session")
def book_full():
    """Chapter 01 built in full mode into ``_build/test-book-full`` (mark: "book-full")."""
    return build_book.build_for_tests(str(ROOT), "full")
