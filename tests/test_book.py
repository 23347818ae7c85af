"""The Jupyter Book: its table of contents, and a real build (fast mode, warnings are errors).

The build runs once per session (``scripts/build_book.py``, shared with tests/test_browser.py)
into ``_build/html``; notebooks are executed through jupyter-cache, so a second run with nothing
changed takes seconds. A failing build fails ``test_book_builds`` with jb's output and the
execution reports.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import jupytext
import pytest
import yaml
from toy_notebooks import MYST_HEADER

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book

PARTS = ["Foundations", "Theory", "Practice at scale", "Related systems", "Assignments",
         "References"]
# The first test that needs the book builds it, executing every notebook: allow for that.
pytestmark = pytest.mark.timeout(1800)
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")



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


@pytest.fixture(scope="session")
def book():
    return build_book.build_for_tests(str(ROOT))


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
    print(f"book build: {book.seconds:.1f} s (fast mode)")


def test_rebuild_with_nothing_changed_is_fast(book):
    if not book.ok:
        pytest.fail("the first build failed (see test_book_builds)", pytrace=False)
    again = build_book.build(ROOT, mode="fast")
    if not again.ok:
        pytest.fail(again.failure_report(), pytrace=False)
    assert "Executing notebook" not in again.output
    print(f"rebuild with nothing changed: {again.seconds:.1f} s")
    assert again.seconds < 90


def test_make_book_prints_index_path(book, capsys):
    """`make book` runs scripts/build_book.py, whose last line is the path of index.html."""
    if not book.ok:
        pytest.fail("the first build failed (see test_book_builds)", pytrace=False)
    assert build_book.main([]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert Path(last) == book.index and Path(last).is_file()


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
