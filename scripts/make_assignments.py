"""Write nbgrader student versions of the notebooks (``make assignments``).

Usage::

    python scripts/make_assignments.py [--root DIR] [--course DIR]

Every ``notebooks/NN_slug.md`` that has exercises (cells with nbgrader metadata, see
``book/contributing.md``) is converted with jupytext into an nbgrader course directory
(default ``_build/assignments``) as ``source/NN_slug/NN_slug.ipynb``, and nbgrader's own
``generate_assignment`` (its preprocessors: ClearSolutions, ClearHiddenTests, ClearMarkScheme,
LockCells, ClearOutput, ComputeChecksums, with the gradebook ``gradebook.db``) writes the
student version ``release/NN_slug/NN_slug.ipynb``. Prints one line per assignment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def grading_cells(notebook) -> list:
    """The cells of ``notebook`` that nbgrader manages (solution or graded cells)."""
    cells = []
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):
            cells.append(cell)
    return cells


def exercise_notebooks(root: Path = ROOT) -> list[Path]:
    """``notebooks/*.md`` that are notebooks (kernelspec) and contain nbgrader cells."""
    found = []
    for md in sorted((Path(root) / "notebooks").glob("*.md")):
        notebook = jupytext.read(md)
        if "kernelspec" in notebook.metadata and grading_cells(notebook):
            found.append(md)
    return found


@contextlib.contextmanager
def _venv_on_path():
    # nbgrader's gradebook runs the `alembic` command found on PATH; when this script runs as
    # .venv/bin/python without an activated venv, that command is in the interpreter's folder.
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def make_assignments(root: Path = ROOT, course: Path | None = None,
                     only: list[str] | None = None) -> dict[str, Path]:
    """Generate the student versions; return {assignment name: student notebook path}.

    ``only``: the names (``NN_slug``) of the notebooks to release, default every notebook with
    exercises.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    root = Path(root).resolve()
    course = Path(course or root / "_build" / "assignments").resolve()
    notebooks = exercise_notebooks(root)
    if only is not None:
        unknown = sorted(set(only) - {md.stem for md in notebooks})
        if unknown:
            raise ValueError(f"only names notebooks without exercises or missing: {unknown}")
        notebooks = [md for md in notebooks if md.stem in only]
    names = []
    for md in notebooks:
        name = md.stem
        for folder in ("source", "release"):
            shutil.rmtree(course / folder / name, ignore_errors=True)
        target = course / "source" / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        notebook = jupytext.read(md)
        notebook.metadata.pop("jupytext", None)  # a plain .ipynb for students
        nbformat.write(notebook, target)
        names.append(name)

    config = Config()
    config.CourseDirectory.root = str(course)
    api = NbGraderAPI(config=config)
    released = {}
    with _venv_on_path():
        for name in names:
            result = api.generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(
                    f"nbgrader generate_assignment {name} failed:\n{result.get('error', '')}\n"
                    f"{result.get('log', '')}"
                )
            released[name] = course / "release" / name / f"{name}.ipynb"
    return released


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--course", type=Path, default=None,
                        help="nbgrader course directory (default: <root>/_build/assignments)")
    args = parser.parse_args(argv)
    released = make_assignments(args.root, args.course)
    for name, path in released.items():
        print(f"{name}: {path}")
    if not released:
        print("no notebook has exercises yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
