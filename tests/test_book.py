"""The Jupyter Book: its table of contents, and real builds (warnings are errors).

The whole book is built once per session in fast mode into an emptied ``_build/test-book``
(fixture ``book`` in tests/conftest.py, shared with tests/test_browser.py), so every notebook
executes in the session; chapter 01 is also built in full mode (fixture ``book_full``). A failing
build fails ``test_book_builds`` with jb's output and the execution reports, and the failing
notebook's ``test_notebook_runs_in_the_book``.

The notebooks are not run under nbval as well: the book build is the same check, see
``test_notebook_runs_in_the_book``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from toy_notebooks import MYST_HEADER

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import build_book
import run_mode

PARTS = ["Foundations", "Theory", "Practice at scale", "Related systems", "Assignments",
         "References"]
# The first test that needs the book builds it, executing every notebook: allow for that.
pytestmark = pytest.mark.timeout(3600)
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
NOTEBOOK_DOCS = [doc for doc in build_book.toc_docnames(ROOT) if doc.startswith("notebooks/")]
# Cell switches that only one of nbval and nbclient (the book's executor) reads; see
# test_notebook_runs_in_the_book.
RUNNER_SPECIFIC = re.compile(r"nbval|NBVAL_|skip-execution")


def _notebooks(root: Path = ROOT) -> list[str]:
    """notebooks/*.md that are notebooks (have a kernelspec), as toc docnames."""
    names = []
    for md in sorted((root / "notebooks").glob("*.md")):
        if "kernelspec" in jupytext.read(md).metadata:
            names.append(f"notebooks/{md.stem}")
    return names


def test_toc_lists_every_notebook():
    docs = build_book.toc_docnames(ROOT)
    missing = [nb for nb in _notebooks() if nb not in docs]
    assert not missing, f"notebooks missing from book/_toc.yml: {missing}"


def test_toc_entries_exist_once():
    docs = build_book.toc_docnames(ROOT)
    assert len(docs) == len(set(docs)), "book/_toc.yml lists a file twice"
    absent = [doc for doc in docs
              if not any((ROOT / f"{doc}{suffix}").is_file() for suffix in (".md", ".ipynb"))]
    assert not absent, f"book/_toc.yml names files that do not exist: {absent}"
    for doc in docs:
        if doc.startswith("notebooks/"):
            assert NOTEBOOK_NAME.match(Path(doc).name), f"{doc}: expected notebooks/NN_slug"


def test_toc_parts_in_order():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"
    captions = [part["caption"] for part in toc["parts"]]
    assert set(captions) <= set(PARTS), f"unknown parts: {set(captions) - set(PARTS)}"
    assert captions == [p for p in PARTS if p in captions], f"parts out of order: {captions}"
    for required in ("Foundations", "Assignments"):
        assert required in captions
    for part in toc["parts"]:
        assert part.get("chapters"), f"part {part['caption']!r} has no chapter"
    numbers = [Path(d).name[:2] for d in build_book.toc_docnames(ROOT) if d.startswith("notebooks/")]
    assert numbers == sorted(numbers), f"notebooks are not in numeric order: {numbers}"
    pages = set(build_book.toc_docnames(ROOT))
    assert {"book/notation", "book/contributing", "book/assignments", "book/bibliography"} <= pages


def test_config_keeps_modes_apart(tmp_path):
    shutil.copytree(ROOT / "book", tmp_path / "book")
    fast = yaml.safe_load(build_book.effective_config(tmp_path, "fast").read_text())
    full = yaml.safe_load(build_book.effective_config(tmp_path, "full").read_text())
    assert fast["execute"]["cache"] != full["execute"]["cache"]
    assert fast["execute"]["execute_notebooks"] == "cache"
    assert full["execute"]["timeout"] >= fast["execute"]["timeout"] >= 300
    for extension in ("sphinx_proof", "sphinx_exercise"):
        assert extension in fast["sphinx"]["extra_extensions"]
    assert fast["bibtex_bibfiles"] == ["book/references.bib"]
    # the reduced-run note (book/_ext/run_mode.py) in fast mode only
    assert fast["sphinx"]["config"]["scorefusion_fast_build"] is True
    assert full["sphinx"]["config"]["scorefusion_fast_build"] is False
    assert Path(fast["sphinx"]["local_extensions"]["run_mode"]) == (tmp_path / "book" / "_ext")
    # the tests' builds keep their cache apart from `make book`'s
    tests = yaml.safe_load(build_book.effective_config(
        tmp_path, "fast", tmp_path / build_book.TEST_OUTPUT["fast"]).read_text())
    assert tests["execute"]["cache"] != fast["execute"]["cache"]
    with pytest.raises(ValueError, match="mode"):
        build_book.build(tmp_path, mode="medium")


def test_every_markdown_file_is_in_the_toc_or_excluded():
    """Sphinx warns (and -W fails) on a .md file outside the toc, e.g. pytest's cache README."""
    from sphinx.util.matching import Matcher

    excluded = Matcher(yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["exclude_patterns"])
    docs = set(build_book.toc_docnames(ROOT))
    stray = []
    for folder, subfolders, files in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        subfolders[:] = [d for d in subfolders if d != ".git" and not excluded(prefix + d)]
        stray += [prefix + name for name in files
                  if name.endswith(".md") and not excluded(prefix + name) and (prefix + name)[:-3] not in docs]
    assert not stray, f"markdown files neither in book/_toc.yml nor excluded in book/_config.yml: {stray}"
    # written by pytest itself after the first run, so a second `make test` would meet them
    assert excluded(".pytest_cache") and excluded(".ruff_cache")


def test_book_builds(book):
    if not book.ok:
        pytest.fail(book.failure_report(), pytrace=False)
    assert book.mode == "fast"
    for doc in build_book.toc_docnames(ROOT):
        assert (book.html / f"{doc}.html").is_file(), f"{doc}.html missing"
    assert "book/intro.html" in (book.html / "index.html").read_text()
    assert (book.html / "_static" / "mathjax" / "tex-chtml.js").is_file()  # MathJax offline
    bibliography = (book.html / "book" / "bibliography.html").read_text()
    assert "ScoreFusion" in bibliography and "Hyvärinen" in bibliography
    # Every chapter, and nothing else, says that it shows a reduced run (book/_ext/run_mode.py).
    for doc in build_book.toc_docnames(ROOT):
        page = (book.html / f"{doc}.html").read_text()
        assert (run_mode.NOTE_CLASS in page) == (doc in NOTEBOOK_DOCS), doc
    print(f"book build: {book.seconds:.1f} s (fast mode)")


def test_no_runner_specific_cell_markers():
    """The condition under which the book build replaces nbval (test_notebook_runs_in_the_book)."""
    found = []
    for doc in NOTEBOOK_DOCS:
        for i, cell in enumerate(jupytext.read(ROOT / f"{doc}.md").cells):
            tags = " ".join(cell.get("metadata", {}).get("tags", []))
            if cell.cell_type == "code" and (RUNNER_SPECIFIC.search(tags)
                                             or RUNNER_SPECIFIC.search(cell.source)):
                found.append(f"{doc} cell {i}")
    assert not found, ("cells with nbval markers or skip-execution, which nbval and the book "
                       f"would run differently: {found}")


@pytest.mark.parametrize("doc", NOTEBOOK_DOCS, ids=lambda doc: Path(doc).name)
def test_notebook_runs_in_the_book(doc, book):
    """Every code cell ran, in order, without error, in this session's build.

    This replaces running the notebooks under ``nbval-lax`` as well, because it is the same check:
    nbval-lax executes every code cell in order in a fresh kernel of this interpreter (cwd
    ``notebooks/``, ``SCOREFUSION_FAST=1``, 600 s per cell) and fails on an exception; it compares
    outputs only of cells marked ``NBVAL_CHECK_OUTPUT``, and of none in a notebook freshly
    converted by jupytext (no execution counts). The book build executes every code cell in order
    in a fresh ``python3`` kernel (jupyter_client maps it to this interpreter; cwd ``notebooks/``,
    ``run_in_temp: false``; ``SCOREFUSION_FAST=1``; 600 s per cell) with ``allow_errors: false``,
    so an exception stops the notebook and fails it and the build (-W). Its folder is emptied
    first (``build_for_tests``), so no result comes from an earlier run's cache. Both honour
    ``raises-exception``; the switches that only one of them reads (nbval's markers,
    ``skip-execution``) are kept out of the notebooks by test_no_runner_specific_cell_markers.
    The one difference is the matplotlib backend: inline (Jupyter's) here, Agg under nbval.
    """
    execution = book.executions.get(doc)
    reports = [text for path, text in book.reports.items() if Path(doc).name in path]
    if execution is None or execution.status != "executed":
        status = execution.status if execution else "not executed"
        pytest.fail(f"{doc}: {status} in this session's book build\n" + "\n".join(reports)
                    + "\n" + "\n".join(book.progress), pytrace=False)
    executed = nbformat.read(book.executed_notebooks / f"{doc}.ipynb", as_version=4)
    source = jupytext.read(ROOT / f"{doc}.md")
    code = [cell for cell in executed.cells if cell.cell_type == "code" and cell.source.strip()]
    assert [c.source for c in code] == [c.source for c in source.cells
                                        if c.cell_type == "code" and c.source.strip()]
    unrun = [i for i, cell in enumerate(code) if cell.execution_count is None]
    assert not unrun, f"{doc}: code cells {unrun} did not run"
    errors = [f"cell {i}: {out.get('ename')}: {out.get('evalue')}" for i, cell in enumerate(code)
              for out in cell.outputs if out.get("output_type") == "error"]
    assert not errors, f"{doc}: " + "; ".join(errors)


def test_build_reports_progress(book):
    """`make book` says which chapter is executing and how long each took."""
    if not book.ok:
        pytest.fail("the first build failed (see test_book_builds)", pytrace=False)
    for doc in NOTEBOOK_DOCS:
        starts = [line for line in book.progress if f"{doc}: executing (fast mode)" in line]
        ends = [line for line in book.progress if re.search(rf"{doc}: executed in \d+:\d\d", line)]
        assert len(starts) == len(ends) == 1, f"{doc}: {book.progress}"
        assert book.progress.index(starts[0]) < book.progress.index(ends[0])
    assert all(re.match(r"\[book \d+:\d\d\] ", line) for line in book.progress)


def test_make_book_with_nothing_changed(book, capsys):
    """`make book` (scripts/build_book.py) with nothing changed: no execution, under 90 s, and
    the last line printed is the path of index.html."""
    if not book.ok:
        pytest.fail("the first build failed (see test_book_builds)", pytrace=False)
    start = time.time()
    status = build_book.main(["--fast", "--output", str(ROOT / build_book.TEST_OUTPUT["fast"])])
    seconds = time.time() - start
    out = capsys.readouterr().out
    assert status == 0, out[-5000:]
    assert "Executing notebook" not in out and ": executing (" not in out
    last = out.strip().splitlines()[-1]
    assert Path(last) == book.index and Path(last).is_file()
    print(f"rebuild with nothing changed: {seconds:.1f} s")
    assert seconds < 90


def test_full_mode_chapter(book_full):
    """Chapter 01 built in full mode: no reduced-run note, and the notebook saw FAST=False."""
    if not book_full.ok:
        pytest.fail(book_full.failure_report(), pytrace=False)
    assert book_full.mode == "full"
    doc = build_book.FULL_TEST_CHAPTER
    assert book_full.executions[doc].status == "executed"
    page = (book_full.html / f"{doc}.html").read_text()
    assert run_mode.NOTE_CLASS not in page
    assert "FAST=False" in page
    print(f"full-mode build of {doc}: {book_full.seconds:.1f} s")


def test_failing_cell_fails_the_build_with_report(tmp_path):
    """A throwaway book: one good notebook (checks fast mode and exercises render), one bad."""
    shutil.copytree(ROOT / "book", tmp_path / "book")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_good.md").write_text(MYST_HEADER + """
# Good

```{code-cell} ipython3
import os
print("fast mode:", os.environ.get("SCOREFUSION_FAST"))
```

## Exercises

```{exercise}
:label: ex-01-double

Write `double(x)`.
```

```{code-cell} ipython3
---
tags: [hide-input]
nbgrader: {grade: false, grade_id: ex-01-double-solution, locked: false, schema_version: 3,
  solution: true}
---
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
```

```{code-cell} ipython3
---
nbgrader: {grade: true, grade_id: ex-01-double-test, locked: true, points: 1, schema_version: 3,
  solution: false}
---
assert double(2) == 4
```
""")
    (tmp_path / "notebooks" / "02_bad.md").write_text(
        MYST_HEADER + "\n# Bad\n\n```{code-cell} ipython3\nsecret = 41\n1 / 0\n```\n")
    toc = yaml.safe_load((tmp_path / "book" / "_toc.yml").read_text())
    toc["parts"].insert(1, {"caption": "Theory", "chapters": [
        {"file": "notebooks/01_good"}, {"file": "notebooks/02_bad"}]})
    (tmp_path / "book" / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))

    result = build_book.build(tmp_path, mode="fast")
    assert not result.ok and result.returncode != 0
    report = result.failure_report()
    assert "ZeroDivisionError" in report and "02_bad" in report
    good = (result.html / "notebooks" / "01_good.html").read_text()
    assert "fast mode: 1" in good
    assert 'class="exercise admonition"' in good  # sphinx-exercise rendered the task
    assert "Show code cell source" in good  # the solution cell is collapsed (hide-input)
    assert run_mode.NOTE_CLASS in good  # fast mode says so at the top of the chapter
    assert result.executions["notebooks/01_good"].status == "executed"
    assert result.executions["notebooks/02_bad"].status == "failed"
    assert any("notebooks/02_bad: FAILED" in line for line in result.progress)
