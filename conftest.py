"""Session setup for `make test` (pytest with pytest-xdist workers, see pyproject.toml).

- Fast mode (`SCOREFUSION_FAST=1`) and a non-interactive matplotlib backend for every test, and
  one torch/OpenMP thread per process when xdist runs several workers (two workers, each with its
  notebook kernels, already fill two cores; more threads would only contend).
- nbval on request: `make test` does not run nbval (the book build executes every notebook and
  tests/test_book.py checks it, see there), but `pytest notebooks/NN_slug.ipynb` still works:
  nbval only collects `.ipynb`, so each MyST notebook (`notebooks/NN_slug.md`) is converted with
  jupytext before collection and the generated files are removed afterwards. Under xdist this is
  done once, by the controller, before the workers start and after they have finished, and all
  cells of one notebook go to one worker (they share its kernel).
"""

import os
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent
_generated: list[Path] = []


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _runs_notebooks(config):
    """True when the run collects the notebooks folder or a file in it."""
    notebooks = ROOT / "notebooks"
    args = [Path(a.split("::")[0]).resolve() for a in config.args] or [ROOT]
    return any(a == notebooks or notebooks in a.parents or a in notebooks.parents for a in args)


def pytest_sessionstart(session):
    os.environ.setdefault("SCOREFUSION_FAST", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    config = session.config
    if _is_xdist_worker(config):
        return
    # The controller's environment is the workers' (xdist starts them after this hook).
    if (getattr(config.option, "numprocesses", None) or 0) > 1:
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
    if not _runs_notebooks(config):
        return
    for md in sorted((ROOT / "notebooks").glob("*.md")):
        notebook = jupytext.read(md)
        if "kernelspec" not in notebook.metadata:
            continue
        target = md.with_suffix(".ipynb")
        jupytext.write(notebook, target)
        _generated.append(target)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Before xdist's own hook, which turns the mark into the item's scheduling group.
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(f"nbval-{item.path.name}"))


def pytest_sessionfinish(session, exitstatus):
    if _is_xdist_worker(session.config):
        return
    for path in _generated:
        path.unlink(missing_ok=True)
