"""Fixtures shared by the test files.

The two book builds are session fixtures built once per process (``build_book.build_for_tests``)
into a folder that the build empties first. Under pytest-xdist (``-n``, see pyproject.toml) each
test that uses one, directly or through another fixture, gets the matching ``xdist_group`` mark
("book" or "book-full") here, so ``--dist loadgroup`` sends all of them to one worker and each
build runs once per session (two workers building into one folder would destroy each other's
build).
"""

import sys
import warnings
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
        fixtures = getattr(item, "fixturenames", ())  # nbval's cells have none
        groups = {group for name, group in BOOK_GROUPS.items() if name in fixtures}
        if len(groups) > 1:
            raise pytest.UsageError(f"{item.nodeid} uses both book builds: split the test, "
                                    "each build belongs to one xdist group")
        for group in groups:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    # xdist marks a grouped test by its node id; pytest >= 9.2 ignores that (pytest-xdist #1386)
    # and every test is then scheduled alone: still correct (build_for_tests locks and reuses),
    # but a worker may wait for the other's book build. Say so instead of being silently slow.
    if not getattr(session.config.option, "loadgroup", False):  # set in xdist's workers only
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        warnings.warn(pytest.PytestWarning(
            f"--dist loadgroup did not group {len(lost)} tests (e.g. {lost[0]}): pytest-xdist "
            "does not support this pytest version (see the pytest pin in pyproject.toml)"))


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
