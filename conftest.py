"""Session setup for `make test`.

Notebooks live as MyST Markdown (`notebooks/NN_slug.md`); nbval only collects
`.ipynb`, so each Markdown notebook is converted with jupytext before
collection and the generated files are removed afterwards. Notebooks run in
fast mode (`SCOREFUSION_FAST=1`).
"""

import os
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent
_generated: list[Path] = []


def _runs_notebooks(config):
    """True when the run collects the notebooks folder (``make test`` or an explicit path)."""
    notebooks = ROOT / "notebooks"
    args = [Path(a.split("::")[0]).resolve() for a in config.args] or [ROOT]
    return any(a == notebooks or a in notebooks.parents for a in args)


def pytest_sessionstart(session):
    os.environ.setdefault("SCOREFUSION_FAST", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not _runs_notebooks(session.config):
        return
    for md in sorted((ROOT / "notebooks").glob("*.md")):
        notebook = jupytext.read(md)
        if "kernelspec" not in notebook.metadata:
            continue
        target = md.with_suffix(".ipynb")
        jupytext.write(notebook, target)
        _generated.append(target)


def pytest_sessionfinish(session, exitstatus):
    for path in _generated:
        path.unlink(missing_ok=True)
