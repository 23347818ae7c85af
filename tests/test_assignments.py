"""Course assignments: nbgrader student versions of the notebooks (``make assignments``).

For every notebook with exercises, the pipeline of ``scripts/make_assignments.py`` (jupytext,
then nbgrader's own ``generate_assignment``) writes a student version, and:

- the student version contains none of the solution code and no nbgrader marker;
- its test cells are locked and checksummed;
- executed in one kernel (fast mode, SCOREFUSION_FAST=1), every autograded test cell FAILS on the student version,
  every other cell runs; then, in the same kernel, running the instructor's solution cells
  makes every test cell PASS.

The same checks also run on a throwaway notebook, so the pipeline itself is always tested.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from toy_notebooks import MYST_HEADER

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_assignments

EXERCISE_NOTEBOOKS = make_assignments.exercise_notebooks(ROOT)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_test(cell) -> bool:
    return cell.cell_type == "code" and bool(_meta(cell).get("grade")) \
        and not _meta(cell).get("solution")


def _is_solution(cell) -> bool:
    return bool(_meta(cell).get("solution"))


def _solution_lines(cell) -> list[str]:
    """Stripped lines between the solution (and hidden-test) markers of an instructor cell."""
    lines, inside = [], False
    for line in cell.source.splitlines():
        text = line.strip()
        if text.startswith("###") and ("BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text):
            inside = True
        elif text.startswith("###") and ("END SOLUTION" in text or "END HIDDEN TESTS" in text):
            inside = False
        elif inside and text and not text.startswith("#"):
            lines.append(text)
    return lines


def _errors(cell) -> list[str]:
    return [f"{out.get('ename')}: {out.get('evalue')}" for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]


def check_student_version(instructor_path: Path, student_path: Path, workdir: Path) -> dict:
    """Run every check of this module on one assignment; return a summary."""
    instructor = nbformat.read(instructor_path, as_version=4)
    student = nbformat.read(student_path, as_version=4)
    assert len(instructor.cells) == len(student.cells)
    tests = [i for i, cell in enumerate(instructor.cells) if _is_test(cell)]
    solutions = [i for i, cell in enumerate(instructor.cells) if _is_solution(cell)]
    assert tests, f"{instructor_path.name}: no autograded test cell"
    assert solutions, f"{instructor_path.name}: no solution cell"

    # 1. No solution code, no marker, test cells locked and checksummed.
    student_text = "\n".join(cell.source for cell in student.cells)
    for marker in MARKERS:
        assert marker not in student_text, f"{student_path.name}: marker {marker!r} left"
    for i in solutions:
        assert "BEGIN SOLUTION" in instructor.cells[i].source, \
            f"{instructor_path.name} cell {i}: solution cell without ### BEGIN SOLUTION"
        for line in _solution_lines(instructor.cells[i]):
            assert line not in student_text, \
                f"{student_path.name}: solution line {line!r} leaked into the student version"
    for i in tests:
        cell = student.cells[i]
        assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False
        assert _meta(cell).get("checksum") and _meta(cell).get("points", 0) > 0
    for cell in student.cells:
        assert cell.cell_type != "code" or not cell.get("outputs")

    # 2. One kernel: the student version, then the instructor's solutions and tests.
    client = NotebookClient(student, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    failed_on_student, passed_on_instructor = [], []
    env = {**os.environ, "SCOREFUSION_FAST": "1", "MPLBACKEND": "Agg"}
    with client.setup_kernel(env=env):
        for i, cell in enumerate(student.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, i)
        for i, cell in enumerate(student.cells):
            if cell.cell_type != "code":
                continue
            if _is_test(cell):
                assert _errors(cell), \
                    f"{student_path.name} cell {i} ({_meta(cell)['grade_id']}): the test " \
                    "passes on the student version (it must call code the student writes)"
                failed_on_student.append(_meta(cell)["grade_id"])
            elif not _is_solution(cell):
                assert not _errors(cell), \
                    f"{student_path.name} cell {i}: a non-exercise cell fails on the student " \
                    f"version: {_errors(cell)}"
        previous = -1
        for t in tests:
            for i in solutions:
                if previous < i < t:
                    solution = copy.deepcopy(instructor.cells[i])
                    client.execute_cell(solution, i)
                    assert not _errors(solution), \
                        f"{instructor_path.name} cell {i}: solution fails: {_errors(solution)}"
            test = copy.deepcopy(instructor.cells[t])
            client.execute_cell(test, t)
            assert not _errors(test), \
                f"{instructor_path.name} cell {t} ({_meta(test)['grade_id']}): the test fails " \
                f"with the instructor's solution: {_errors(test)}"
            passed_on_instructor.append(_meta(test)["grade_id"])
            previous = t
    return {"failed_on_student": failed_on_student, "passed_on_instructor": passed_on_instructor}


def test_every_notebook_has_exercises():
    notebooks = [md for md in sorted((ROOT / "notebooks").glob("*.md"))]
    with_exercises = set(EXERCISE_NOTEBOOKS)
    missing = [md.name for md in notebooks if md not in with_exercises
               and "kernelspec" in md.read_text()[:400]]
    assert not missing, f"notebooks without an nbgrader exercise: {missing}"


# Last chapter first: under `make test` the book build executes the chapters first to last on the
# other xdist worker, so the two meet in the middle instead of one waiting for the other to train
# the same cached networks (scorefusion.cache holds a file lock while it trains).
@pytest.mark.parametrize("md", EXERCISE_NOTEBOOKS[::-1], ids=lambda p: p.stem)
def test_student_version(md, tmp_path):
    # Each test releases its own notebook, so xdist's workers can share the notebooks out.
    course, name = tmp_path / "course", md.stem
    paths = make_assignments.make_assignments(ROOT, course, only=[name])
    assert list(paths) == [name] and paths[name].is_file()
    summary = check_student_version(course / "source" / name / f"{name}.ipynb", paths[name],
                                    ROOT / "notebooks")
    assert summary["failed_on_student"] == summary["passed_on_instructor"]



_TOY = MYST_HEADER + """
# Toy

```{code-cell} ipython3
import math
base = 3
```

## Exercises

```{exercise}
:label: ex-01-square

Write `square(x)`.
```

```{code-cell} ipython3
---
tags: [hide-input]
nbgrader:
  grade: false
  grade_id: ex-01-square-solution
  locked: false
  schema_version: 3
  solution: true
---
def square(x):
    ### BEGIN SOLUTION
    result = x * x
    return result
    ### END SOLUTION
```

```{code-cell} ipython3
---
nbgrader:
  grade: true
  grade_id: ex-01-square-test
  locked: true
  points: 2
  schema_version: 3
  solution: false
---
assert square(base) == 9
### BEGIN HIDDEN TESTS
assert math.isclose(square(0.5), 0.25)
### END HIDDEN TESTS
```
"""


def test_pipeline_on_a_toy_notebook(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_toy.md").write_text(_TOY)
    (tmp_path / "notebooks" / "02_no_exercise.md").write_text(MYST_HEADER + "\n# None\n")
    paths = make_assignments.make_assignments(tmp_path)
    assert set(paths) == {"01_toy"}
    course = tmp_path / "_build" / "assignments"
    student = nbformat.read(paths["01_toy"], as_version=4)
    solution_cell = student.cells[3]
    assert "raise NotImplementedError()" in solution_cell.source
    assert "def square(x):" in solution_cell.source  # the signature is kept
    assert "math.isclose" not in student.cells[4].source  # hidden test removed
    assert (course / "gradebook.db").is_file()
    with pytest.raises(ValueError, match="only"):
        make_assignments.make_assignments(tmp_path, only=["02_no_exercise"])
    summary = check_student_version(course / "source" / "01_toy" / "01_toy.ipynb",
                                    paths["01_toy"], tmp_path / "notebooks")
    assert summary == {"failed_on_student": ["ex-01-square-test"],
                       "passed_on_instructor": ["ex-01-square-test"]}


def test_a_test_that_cannot_fail_is_caught(tmp_path):
    """A test cell that does not use the student's code must be reported."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_toy.md").write_text(
        _TOY.replace("assert square(base) == 9", "assert base == 3").replace(
            "assert math.isclose(square(0.5), 0.25)", "pass"))
    paths = make_assignments.make_assignments(tmp_path)
    course = tmp_path / "_build" / "assignments"
    with pytest.raises(AssertionError, match="passes on the student version"):
        check_student_version(course / "source" / "01_toy" / "01_toy.ipynb", paths["01_toy"],
                              tmp_path / "notebooks")
