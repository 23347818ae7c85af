"""The notebooks as a student runs them: JupyterLab (``make lab``) in a real browser.

Debian's Chromium, driven by Playwright and headless, talks to JupyterLab started by the script
``make lab`` runs (``scripts/start_lab.py``: jupytext, jupyterlab-myst, nbgrader's extension), on
a free port of 127.0.0.1 with a token only the test knows, no browser of its own, fast mode
(``SCOREFUSION_FAST=1``). The lab serves copies of the notebooks in a temporary folder, so that
nothing the lab saves reaches the tracked files. One extra option, ``expose_app_in_browser``
(the switch JupyterLab's own browser tests use), lets the test read the notebook model that the
page shows: cell outputs with their type, the nbgrader metadata, the kernel status.

- Two chapters (01, and 02: the quickest of the heavier ones in fast mode, with figures,
  citations, equation references and a cross-chapter reference) run through the UI: menu
  Run > Run All Cells, then wait until the kernel is idle. No cell may end with an error output,
  every code cell must have run, a figure must be drawn, and every markdown cell must be rendered
  by jupyterlab-myst with no MyST source left (no ``{cite}``/``{eq}``/``{ref}`` role text, no
  ``(label)=`` target, no directive fence, no "Unknown Directive" box, no KaTeX error).
- One example of each directive and role the chapters may use (``DIRECTIVES``, ``ROLES``)
  renders in the lab as its MyST element (an unknown directive shows as the "Unknown Directive"
  box the checks catch), and no chapter uses a directive or role outside that list. (Rendering
  every chapter in Chromium costs about a second per markdown cell on this machine; the list
  gives the same guarantee for the price of one small notebook.)
- The nbgrader round trip: chapter 01's student version is released by nbgrader's own
  ``generate_assignment`` (``scripts/make_assignments.py``), opened in the lab, where its
  solution cells show only the stub and the autograded test cells are read-only and marked
  locked in nbgrader's "Create Assignment" panel; the answers are typed into the solution cells
  and saved through the UI, and ``nbgrader autograde`` gives the saved notebook full points.
  What the student versions contain is checked by tests/test_assignments.py, whose helpers this
  file uses.

A screenshot of each page is saved under the test's ``tmp_path``; a failure prints its path.
Measured on the shared 2-core machine (load average 9-12 from other jobs): the two chapters
95-112 s together, starting the lab included (Run All Cells itself 19-21 s for chapter 01,
24-25 s for chapter 02); the MyST elements 13 s; the nbgrader round trip 62-96 s, of which
``generate_assignment`` 11-18 s; the file 3.5-4 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from lab_server import running_lab
from playwright.sync_api import sync_playwright
from test_assignments import _is_solution, _is_test, _meta, _solution_lines
from test_browser import CHROMIUM, CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_assignments

# Every test here shares one lab server and one browser: keep them on one xdist worker.
pytestmark = [pytest.mark.xdist_group("lab-browser"), pytest.mark.timeout(600)]

CHAPTERS = [md for md in sorted((ROOT / "notebooks").glob("*.md"))
            if "kernelspec" in jupytext.read(md).metadata]
RUN_IN_THE_LAB = [md for md in CHAPTERS if md.name.startswith(("01_", "02_"))]
STUDENT_CHAPTER = next(md for md in CHAPTERS if md.name.startswith("01_"))
RUN_TIMEOUT_S = 240
# MyST source that must not survive rendering: a role, a target label, a directive fence.
RAW_MYST = re.compile(r"\{[a-z][\w:-]*\}`|^\s*\([\w:.-]+\)=\s*$|^\s*(`{3,}|:{3,})\{",
                      re.MULTILINE)


def _copy_chapters(root: Path, chapters: list[Path]) -> None:
    (root / "notebooks").mkdir(parents=True)
    for md in chapters:
        shutil.copy(md, root / "notebooks" / md.name)


@pytest.fixture(scope="module")
def chromium():
    assert CHROMIUM.exists(), "Chromium is missing: `make browser` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def chapters_lab(tmp_path_factory):
    """The lab on copies of every chapter."""
    root = tmp_path_factory.mktemp("chapters")
    _copy_chapters(root, CHAPTERS)
    with running_lab(root, root / "lab.log") as (base, token):
        yield base, token, root


# --- the page -----------------------------------------------------------------------------

_PANEL = """path => [...window.jupyterapp.shell.widgets('main')]
    .find(w => w.context && w.context.path === path)"""

_READY_JS = f"""path => {{
  if (!window.jupyterapp) return false;
  const panel = ({_PANEL})(path);
  if (!panel || !panel.context.isReady) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle'
      && panel.content.node.querySelectorAll('.jp-Cell').length === panel.content.widgets.length;
}}"""

_RENDERED_JS = f"""path => {{
  if (!window.jupyterapp) return false;
  const panel = ({_PANEL})(path);
  if (!panel || !panel.context.isReady) return false;
  const cells = panel.content.widgets;
  return panel.content.node.querySelectorAll('.jp-Cell').length === cells.length
      && cells.filter(w => w.model.type === 'markdown')
              .every(w => w.rendered && w.node.querySelector('.myst'));
}}"""

_RUN_DONE_JS = f"""path => {{
  const panel = ({_PANEL})(path);
  const code = panel.content.widgets.filter(w => w.model.type === 'code');
  const busy = code.some(w => w.model.executionState === 'running'
                             || (w.promptNode && w.promptNode.textContent.includes('*')));
  const done = code.every(w => w.model.executionCount !== null);
  const errors = code.some(w => w.model.outputs.toJSON().some(o => o.output_type === 'error'));
  return !busy && panel.sessionContext.session.kernel.status === 'idle' && (done || errors);
}}"""

_CELLS_JS = f"""path => {{
  const panel = ({_PANEL})(path);
  return panel.content.widgets.map((w, index) => {{
    const cell = {{index, type: w.model.type, source: w.model.sharedModel.getSource(),
                  readOnly: w.readOnly}};
    if (w.model.type === 'code') {{
      cell.execution_count = w.model.executionCount;
      cell.outputs = w.model.outputs.toJSON();
      cell.images = [...w.node.querySelectorAll('.jp-OutputArea-output img')]
          .filter(img => img.complete && img.naturalWidth > 0).length;
    }} else if (w.model.type === 'markdown') {{
      cell.rendered = w.rendered;
      cell.myst = !!w.node.querySelector('.myst');
      const clone = w.inputArea.node.cloneNode(true);
      clone.querySelectorAll('.jp-Editor, .jp-InputPrompt, .katex-mathml, jp-toolbar')
           .forEach(e => e.remove());
      cell.text = clone.innerText;
      cell.unknown = [...w.node.querySelectorAll('details')]
          .filter(d => /Unknown Directive/.test(d.innerText)).map(d => d.innerText);
      cell.katex_errors = w.node.querySelectorAll('.katex-error').length;
      cell.katex = w.node.querySelectorAll('.katex').length;
      cell.eq_links = [...w.node.querySelectorAll('a')].map(a => a.innerText)
          .filter(t => /^\\(\\d+\\)$/.test(t)).length;
    }}
    return cell;
  }});
}}"""


@contextlib.contextmanager
def _page(chromium, tmp_path: Path, name: str):
    """A fresh page; on any failure, a screenshot under ``tmp_path`` and its path printed."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    shot = tmp_path / f"{name}.png"
    try:
        yield page
        page.screenshot(path=str(shot))
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
        raise
    finally:
        page.close()


def _open(page, base: str, token: str, path: str) -> None:
    """Open ``path`` in the lab as a student does (its default viewer) and wait for the kernel."""
    page.goto(f"{base}/lab/tree/{path}?reset&token={token}")
    page.wait_for_function(_READY_JS, arg=path, timeout=120_000)


def _shutdown(page, path: str) -> None:
    page.evaluate(f"path => ({_PANEL})(path).sessionContext.shutdown()", path)


def _run_all_from_the_menu(page, path: str) -> float:
    """Run > Run All Cells, then wait until the kernel is idle; return the seconds it took."""
    start = time.perf_counter()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(_RUN_DONE_JS, arg=path, timeout=RUN_TIMEOUT_S * 1000, polling=500)
    return time.perf_counter() - start


def _check_myst_rendered(cells: list[dict], name: str) -> None:
    """Every markdown cell rendered by jupyterlab-myst with no MyST source text left."""
    markdown = [c for c in cells if c["type"] == "markdown"]
    assert markdown, f"{name}: no markdown cell"
    for cell in markdown:
        where = f"{name} markdown cell {cell['index']}"
        assert cell["rendered"] and cell["myst"], f"{where}: not rendered by jupyterlab-myst"
        raw = [match.group(0) for match in RAW_MYST.finditer(cell["text"])]
        assert not raw, f"{where}: MyST source shown as text {raw}"
        assert "$$" not in cell["text"], f"{where}: untypeset display math"
        assert not cell["unknown"], f"{where}: directive the lab cannot render {cell['unknown']}"
        assert not cell["katex_errors"], f"{where}: KaTeX error"
    source = "\n".join(c["source"] for c in markdown)
    if "$" in source:
        assert sum(c["katex"] for c in markdown) > 0, f"{name}: no math typeset"
    if "{eq}`" in source:
        assert sum(c["eq_links"] for c in markdown) > 0, f"{name}: no equation reference rendered"
    text = "\n".join(c["text"] for c in markdown)
    for key in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", source):
        for part in key.split(","):
            assert part.strip() in text, f"{name}: citation {part.strip()!r} not shown"


# --- the chapters, run in the lab -----------------------------------------------------------

@pytest.mark.parametrize("md", RUN_IN_THE_LAB, ids=lambda p: p.stem)
def test_chapter_runs_in_the_lab(md, chapters_lab, chromium, tmp_path):
    base, token, _ = chapters_lab
    with _page(chromium, tmp_path, md.stem) as page:
        _open(page, base, token, md.name)
        seconds = _run_all_from_the_menu(page, md.name)
        cells = page.evaluate(_CELLS_JS, md.name)
        code = [c for c in cells if c["type"] == "code"]
        errors = [f"cell {c['index']}: {o.get('ename')}: {o.get('evalue')}"
                  for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{md.name}: error outputs after Run All Cells: {errors}"
        unrun = [c["index"] for c in code if c["execution_count"] is None]
        assert not unrun, f"{md.name}: code cells that did not run: {unrun}"
        assert sum(c["images"] for c in code) >= 1, f"{md.name}: no figure drawn"
        assert any("image/png" in o.get("data", {}) for c in code for o in c["outputs"])
        _check_myst_rendered(cells, md.name)
        _shutdown(page, md.name)
    print(f"{md.name}: Run All Cells took {seconds:.1f} s")


# --- what the lab renders, and the chapters use only that ---------------------------------

#: Each directive the chapters may use, with an example and the element jupyterlab-myst renders
#: it as (book/assignments.md has the same table in words).
DIRECTIVES = {
    "prf:theorem": ("```{prf:theorem} A theorem\n:label: thm-x\n\nIt holds for $x$.\n```",
                    ".myst-proof"),
    "prf:lemma": ("```{prf:lemma} A lemma\n:label: lem-x\n\nIt holds.\n```", ".myst-proof"),
    "prf:proof": ("```{prf:proof}\nBy {prf:ref}`thm-x`.\n```", ".myst-proof"),
    "exercise": ("```{exercise}\n:label: ex-x\n\nShow it.\n```", ".myst-exercise"),
    "solution": ("```{solution} ex-x\n:label: sol-x\n\nShown.\n```", ".myst-exercise"),
    "note": ("```{note}\nA note.\n```", ".myst-admonition"),
    "warning": ("```{warning}\nA warning.\n```", ".myst-admonition"),
    "admonition": ("```{admonition} A title\nA box.\n```", ".myst-admonition"),
    "math": ("```{math}\n:label: eq-y\n\ny = x^2\n```", ".katex-display"),
}
#: The roles and other inline MyST the chapters may use, in one paragraph.
ROLES_EXAMPLE = """(sec-x)=
# Roles

$$
a = b
$$ (eq-x)

Inline $x$ and {math}`y^2`; {eq}`eq-x` and {eq}`eq-y`; {numref}`thm-x` and {prf:ref}`thm-x`;
{ref}`sec-x` and {ref}`ch-in-another-chapter`; {cite}`liu2025scorefusion`; a number glued by
myst-nb, {glue:text}`a_number:.3f`.
"""
ROLES = set(re.findall(r"\{([\w:-]+)\}`", ROLES_EXAMPLE))
# A directive jupyterlab-myst does not know: how the lab degrades (and what the checks catch).
UNKNOWN_DIRECTIVE = "```{glue:figure} a-key\nA caption.\n```"


def test_myst_elements_render_in_the_lab(chapters_lab, chromium, tmp_path):
    base, token, root = chapters_lab
    sources = [ROLES_EXAMPLE, *(example for example, _ in DIRECTIVES.values()), UNKNOWN_DIRECTIVE]
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(source) for source in sources],
        metadata={"kernelspec": jupytext.read(CHAPTERS[0]).metadata["kernelspec"]})
    path = "myst_elements.ipynb"
    nbformat.write(notebook, root / "notebooks" / path)
    with _page(chromium, tmp_path, "myst-elements") as page:
        _open(page, base, token, path)
        page.wait_for_function(_RENDERED_JS, arg=path, timeout=120_000)
        cells = page.evaluate(_CELLS_JS, path)
        _check_myst_rendered(cells[:-1], path)
        assert "a_number:.3f" in cells[0]["text"]  # the lab shows a glued number's name
        nodes = page.locator(".jp-Notebook .jp-Cell")
        for index, (name, (_, selector)) in enumerate(DIRECTIVES.items(), start=1):
            assert nodes.nth(index).locator(selector).count() == 1, \
                f"{{{name}}} is not rendered as {selector}"
        assert cells[-1]["unknown"], "an unknown directive did not show as such"
        _shutdown(page, path)


def test_chapters_use_only_what_the_lab_renders():
    """Every directive and role in the chapters' markdown is one the lab renders (above)."""
    for md in CHAPTERS:
        text = "\n".join(cell.source for cell in jupytext.read(md).cells
                         if cell.cell_type == "markdown")
        directives = set(re.findall(r"^\s*(?:`{3,}|:{3,})\{([\w:-]+)\}", text, re.MULTILINE))
        roles = set(re.findall(r"\{([\w:-]+)\}`", text))
        assert directives <= set(DIRECTIVES), \
            f"{md.name}: directives the lab does not render: {sorted(directives - set(DIRECTIVES))}"
        assert roles <= ROLES, f"{md.name}: roles not checked in the lab: {sorted(roles - ROLES)}"


# --- the nbgrader round trip in the lab -----------------------------------------------------

@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Chapter 01 released by nbgrader (course folder, instructor and student notebooks)."""
    instructor = tmp_path_factory.mktemp("instructor")
    _copy_chapters(instructor, [STUDENT_CHAPTER])
    name = STUDENT_CHAPTER.stem
    student_path = make_assignments.make_assignments(instructor)[name]
    course = instructor / "_build" / "assignments"
    return course, course / "source" / name / f"{name}.ipynb", student_path


def _answer(instructor_cell) -> str:
    """The instructor's solution cell without nbgrader's markers: what a student would type."""
    return "\n".join(line for line in instructor_cell.source.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def _autograde(course: Path, name: str, student: str) -> tuple[float, float]:
    """``nbgrader autograde`` as book/assignments.md runs it; return (score, max score)."""
    from nbgrader.api import Gradebook

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "SCOREFUSION_FAST": "1", "MPLBACKEND": "Agg",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(bin_dir / "nbgrader"), "autograde", name, "--student", student, "--create",
               "--force"]
    result = subprocess.run(command, check=False, cwd=course, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader autograde failed:\n{result.stdout}\n{result.stderr}"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(name, student)
        return submission.score, submission.max_score


def test_student_version_in_the_lab(released, chromium, tmp_path):
    course, instructor_path, student_path = released
    name = STUDENT_CHAPTER.stem
    instructor = nbformat.read(instructor_path, as_version=4)
    student_root = tmp_path / "student"
    (student_root / "notebooks").mkdir(parents=True)
    shutil.copy(student_path, student_root / "notebooks" / student_path.name)
    path = student_path.name
    solutions = [i for i, cell in enumerate(instructor.cells) if _is_solution(cell)]
    tests = [i for i, cell in enumerate(instructor.cells) if _is_test(cell)]

    with running_lab(student_root, tmp_path / "lab.log") as (base, token), \
            _page(chromium, tmp_path, "student-version") as page:
        _open(page, base, token, path)
        cells = page.evaluate(_CELLS_JS, path)
        assert len(cells) == len(instructor.cells)

        # What the student sees: stubs in place of the solutions, read-only test cells.
        for i in solutions:
            shown = cells[i]["source"]
            assert "raise NotImplementedError()" in shown, f"cell {i}: no stub shown"
            leaked = [line for line in _solution_lines(instructor.cells[i]) if line in shown]
            assert not leaked, f"cell {i}: solution lines shown to the student: {leaked}"
            assert not cells[i]["readOnly"], f"cell {i}: the solution cell is read-only"
        for i in tests:
            assert cells[i]["readOnly"], \
                f"cell {i} ({_meta(instructor.cells[i])['grade_id']}): test cell is editable"
            # Typing into its editor changes nothing.
            editor = page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".cm-content")
            editor.click()
            assert editor.evaluate("e => e.contains(document.activeElement)")
            page.keyboard.type("assert False")
            page.keyboard.press("Escape")
            assert page.evaluate(_CELLS_JS, path)[i]["source"] == cells[i]["source"]

        # nbgrader's own panel shows the test cells as locked autograded tests with points.
        page.locator(".lm-TabBar-tab", has_text="Create Assignment").click()
        panel = page.locator("#nbgrader-create_assignemnt")
        panel.wait_for()
        widgets = panel.locator(".nbgrader-CellWidget")
        assert widgets.count() == len(cells)
        for i in tests:
            widget = widgets.nth(i)
            meta = _meta(instructor.cells[i])
            kind = widget.locator("select").evaluate("s => s.options[s.selectedIndex].text")
            assert kind == "Autograded tests", f"cell {i}: nbgrader panel shows {kind!r}"
            assert widget.locator(".nbgrader-LockButton.nbgrader-mod-locked").count() == 1
            assert widget.locator(".nbgrader-CellId input").input_value() == meta["grade_id"]
            assert float(widget.locator(".nbgrader-CellPoints input").input_value()) \
                == meta["points"]
        for i in solutions:
            kind = widgets.nth(i).locator("select").evaluate(
                "s => s.options[s.selectedIndex].text")
            assert kind == "Autograded answer", f"cell {i}: nbgrader panel shows {kind!r}"

        # The student types the answers and saves (Ctrl+S).
        for i in solutions:
            editor = page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".cm-content")
            editor.click()
            page.keyboard.press("Control+a")
            page.keyboard.insert_text(_answer(instructor.cells[i]))
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        page.wait_for_function(f"path => !({_PANEL})(path).context.model.dirty", arg=path)
        _shutdown(page, path)

    saved = nbformat.read(student_root / "notebooks" / path, as_version=4)
    for i in solutions:
        assert saved.cells[i].source == _answer(instructor.cells[i])
    submitted = course / "submitted" / "student-1" / name / f"{name}.ipynb"
    submitted.parent.mkdir(parents=True)
    shutil.copy(student_root / "notebooks" / path, submitted)
    score, max_score = _autograde(course, name, "student-1")
    points = sum(_meta(instructor.cells[i])["points"] for i in tests)
    assert max_score == points and score == points, \
        f"autograde gave {score} of {max_score} points (expected {points} of {points})"
    print(json.dumps({"autograde": {"score": score, "max_score": max_score}}))
