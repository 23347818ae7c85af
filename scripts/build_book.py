"""Build the Jupyter Book (``make book``, ``make book FAST=1``, and the tests).

Usage::

    python scripts/build_book.py [--fast] [--root DIR] [--output DIR]

The book is Jupyter Book 1, built from the repository root with
``jb build . --config <config> --toc book/_toc.yml -W -n --keep-going``. By default the
notebooks run at full size, the runs the text describes; ``--fast`` (``make book FAST=1``) runs
them in fast mode (``SCOREFUSION_FAST=1``), and each chapter of that build opens with a one-line
note saying so (``book/_ext/run_mode.py``). Execution goes through jupyter-cache, so only a
changed chapter re-executes. jupyter-cache must never mix the two modes, so the effective config
is ``book/_config.yml`` with ``execute.cache`` (one folder per mode,
``<output>/_build/.jupyter_cache/<mode>``), ``execute.timeout`` (per cell) and the run-mode
extension added; it is written to ``<output>/_build/book-config/<mode>/_config.yml``. Sphinx's
own incremental state knows neither the mode nor a failed previous build, so a build after a
build in the other mode, or after a failed one, re-renders every page (``--all``); executions
stay cached per mode.

While it builds, a line ``[book m:ss] ...`` says which chapter is executing (and, every minute,
for how long), and how long each took or that it came from the cache. On failure the execution
reports (``<output>/_build/html/reports/*.log``) written by this build are printed, and the exit
status is non-zero. On success the last line printed is the path of ``index.html``.

The tests build into folders of their own (``_build/test-book``, ``_build/test-book-full``),
emptied first so that every notebook executes in the test session (:func:`build_for_tests`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import filelock
import yaml

ROOT = Path(__file__).resolve().parents[1]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# myst-nb's execution messages, prefixed by Sphinx with the source path ("<path>: <message>").
_MYSTNB = re.compile(
    r"^(?P<path>\S.*?\.(?:md|ipynb)): (?:WARNING: )?(?P<message>"
    r"Executing notebook using|Executed notebook in (?P<seconds>[0-9.]+) seconds|"
    r"Using cached notebook|Executing notebook failed)"
)

#: Per-cell timeout in seconds: fast mode (the tests) and the full-size runs (CPU training).
CELL_TIMEOUT = {"fast": 600, "full": 3600}
#: Seconds between two "still executing" lines.
HEARTBEAT = 60.0
#: The test builds' folders (``jb build --path-output``), one per mode.
TEST_OUTPUT = {"fast": "_build/test-book", "full": "_build/test-book-full"}
#: The chapter of the tests' full-mode build: a light one (about a minute on two cores).
FULL_TEST_CHAPTER = "notebooks/01_kl_barycenters_of_gaussians"


@dataclass
class Execution:
    """What the build did with one notebook: ``executed`` (``seconds``), ``cached`` or ``failed``."""

    doc: str
    status: str
    seconds: float | None = None


@dataclass
class BookBuild:
    """The outcome of one ``jb build``."""

    mode: str
    returncode: int
    output: str
    seconds: float
    html: Path
    reports: dict[str, str] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    progress: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and (self.html / "index.html").exists()

    @property
    def index(self) -> Path:
        return self.html / "index.html"

    @property
    def executed_notebooks(self) -> Path:
        """myst-nb's copies of the executed notebooks (``<doc>.ipynb``)."""
        return self.html.parent / "jupyter_execute"

    def failure_report(self, tail: int = 120) -> str:
        """The last lines of jb's output followed by every execution report of this build."""
        lines = self.output.splitlines()[-tail:]
        clean = _ANSI.sub("", self.output).splitlines()
        problems = [line for line in clean if "WARNING" in line or "ERROR" in line]
        parts = [f"jb build ({self.mode} mode) exited {self.returncode}."]
        if problems:
            parts += ["Warnings and errors (-W makes every warning fail the build):", *problems, ""]
        parts += ["Last output lines:", *lines]
        for path, text in self.reports.items():
            parts += ["", f"===== execution report {path} =====", text]
        if not self.reports:
            parts += ["", "(no execution report was written: the failure is not a notebook cell)"]
        return _ANSI.sub("", "\n".join(parts))


def _build_dir(root: Path, output: Path | None) -> Path:
    """Where jb writes: ``<output>/_build`` (``jb build --path-output``), ``<root>/_build`` by default."""
    return Path(output or root).resolve() / "_build"


def effective_config(root: Path, mode: str, output: Path | None = None) -> Path:
    """Write book/_config.yml with the per-mode cache folder, cell timeout and run-mode note.

    Returns the path of the written file, ``<output>/_build/book-config/<mode>/_config.yml``.
    """
    root = Path(root).resolve()
    build_dir = _build_dir(root, output)
    config = yaml.safe_load((root / "book" / "_config.yml").read_text())
    execute = config.setdefault("execute", {})
    execute["cache"] = str(build_dir / ".jupyter_cache" / mode)
    execute["timeout"] = CELL_TIMEOUT[mode]
    sphinx = config.setdefault("sphinx", {})
    # local_extensions paths are relative to the config file: make them absolute.
    local = sphinx.get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((root / "book" / path).resolve())
    local["run_mode"] = str((root / "book" / "_ext").resolve())
    sphinx["local_extensions"] = local
    sphinx.setdefault("config", {})["scorefusion_fast_build"] = mode == "fast"
    target = build_dir / "book-config" / mode / "_config.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


class _Progress:
    """Turns myst-nb's execution messages into ``[book m:ss]`` lines, plus a heartbeat."""

    def __init__(self, root: Path, mode: str, echo: bool):
        self.root, self.mode, self.echo = root, mode, echo
        self.start = time.time()
        self.lines: list[str] = []
        self.executions: dict[str, Execution] = {}
        self.current: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _say(self, text: str) -> None:
        with self._lock:
            line = f"[book {_clock(time.time() - self.start)}] {text}"
            self.lines.append(line)
            if self.echo:
                print(line, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            current = self.current
            if current is not None:
                self._say(f"{current[0]}: still executing ({_clock(time.time() - current[1])} so far)")

    def _doc(self, path: str) -> str:
        path = Path(path)
        try:
            path = path.resolve().relative_to(self.root)
        except ValueError:
            pass
        return path.with_suffix("").as_posix()

    def feed(self, line: str) -> None:
        match = _MYSTNB.match(_ANSI.sub("", line).strip())
        if not match:
            return
        doc, message = self._doc(match["path"]), match["message"]
        if message.startswith("Executing notebook using"):
            self.current = (doc, time.time())
            self._say(f"{doc}: executing ({self.mode} mode)")
        elif message.startswith("Executed notebook"):
            self.current = None
            seconds = float(match["seconds"])
            self.executions[doc] = Execution(doc, "executed", seconds)
            self._say(f"{doc}: executed in {_clock(seconds)}")
        elif message.startswith("Using cached"):
            self.executions[doc] = Execution(doc, "cached")
            self._say(f"{doc}: from the cache")
        else:
            self.current = None
            self.executions[doc] = Execution(doc, "failed")
            self._say(f"{doc}: FAILED (report below)")


def build(root: Path = ROOT, mode: str = "full", stream: bool = False,
          output: Path | None = None, toc: Path | None = None) -> BookBuild:
    """Build the book of the repository at ``root`` in ``mode`` ("fast" or "full").

    ``output`` is jb's ``--path-output`` (the build goes to ``<output>/_build``, default
    ``<root>/_build``); ``toc`` replaces ``book/_toc.yml``. With ``stream`` jb's output and the
    progress lines are printed as they come; the progress lines are printed in any case.
    """
    if mode not in CELL_TIMEOUT:
        raise ValueError(f"mode must be one of {sorted(CELL_TIMEOUT)}, got {mode!r}")
    root = Path(root).resolve()
    build_dir = _build_dir(root, output)
    html = build_dir / "html"
    config = effective_config(root, mode, output)
    marker = build_dir / ".book-mode"
    previous = marker.read_text().strip() if marker.exists() else None

    env = os.environ.copy()
    if mode == "fast":
        env["SCOREFUSION_FAST"] = "1"
    else:
        env.pop("SCOREFUSION_FAST", None)
    # pytest's session sets MPLBACKEND=Agg, which would keep figures out of the book.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"

    jb = Path(sys.executable).parent / "jb"
    command = [str(jb), "build", str(root), "--config", str(config),
               "--toc", str(Path(toc or root / "book" / "_toc.yml").resolve()),
               "-W", "-n", "--keep-going"]
    if output is not None:
        command += ["--path-output", str(Path(output).resolve())]
    # Sphinx re-reads only changed sources, so it would not repeat the warnings of a failed
    # build, nor notice a change of mode: after either, re-render every page (executions stay
    # cached per mode, so this costs seconds per page, not re-execution).
    if previous != f"{mode}:ok" and html.exists():
        command.append("--all")

    start = time.time()
    lines: list[str] = []
    with _Progress(root, mode, echo=True) as progress, subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                lines.append(line)
                if stream:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                progress.feed(line)
        except BaseException:  # Ctrl-C or a test timeout: stop jb and its kernel, do not wait
            process.kill()
            raise
    seconds = time.time() - start
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{mode}:{'ok' if process.returncode == 0 else 'failed'}")

    reports = {}
    report_dir = html / "reports"
    if report_dir.is_dir():
        for path in sorted(report_dir.rglob("*.log")):
            if path.stat().st_mtime >= start - 1:
                reports[str(path.relative_to(root))] = path.read_text(errors="replace")
    return BookBuild(mode, process.returncode, "".join(lines), seconds, html, reports,
                     progress.executions, progress.lines)


def toc_docnames(root: Path = ROOT) -> list[str]:
    """Every document of book/_toc.yml in reading order (root first), without suffix."""
    toc = yaml.safe_load((Path(root) / "book" / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return names


#: Identifies this test session in every process of it (pytest-xdist sets the variable in its
#: workers; without xdist the session is this process).
_SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}-{time.time()}"


def _save(result: BookBuild, path: Path) -> None:
    data = asdict(result)
    data["html"] = str(result.html)
    path.write_text(json.dumps({"session": _SESSION, "build": data}))


def _load(path: Path) -> BookBuild | None:
    """The build saved at ``path`` by this test session, or None."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved["session"] != _SESSION:
        return None
    data = saved["build"]
    data["html"] = Path(data["html"])
    data["executions"] = {doc: Execution(**e) for doc, e in data["executions"].items()}
    return BookBuild(**data)


@functools.cache
def build_for_tests(root: str = str(ROOT), mode: str = "fast") -> BookBuild:
    """One build per test session, from an empty folder, so every notebook executes.

    Fast mode builds the whole book into ``_build/test-book``. Full mode builds only
    :data:`FULL_TEST_CHAPTER` (and the bibliography its citations need) into
    ``_build/test-book-full``: a page of each mode for the browser test, without the full
    book's run time. The tests of one build run on one xdist worker (tests/conftest.py); should
    another worker need it anyway, a file lock makes it wait and reuse the build, never redo it
    in the same folder.
    """
    root_path = Path(root)
    output = root_path / TEST_OUTPUT[mode]
    output.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(output.with_name(output.name + ".lock")):
        saved = output.with_name(output.name + ".json")
        result = _load(saved)
        if result is not None:
            return result
        shutil.rmtree(output, ignore_errors=True)
        toc = None
        if mode == "full":
            toc = output / "_toc.yml"
            toc.parent.mkdir(parents=True)
            toc.write_text(yaml.safe_dump({"format": "jb-book", "root": FULL_TEST_CHAPTER,
                                           "chapters": [{"file": "book/bibliography"}]}))
        result = build(root_path, mode=mode, output=output, toc=toc)
        _save(result, saved)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true",
                        help="fast mode (SCOREFUSION_FAST=1): small runs, minutes instead of the full ones")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--output", type=Path, default=None,
                        help="build under OUTPUT/_build instead of ROOT/_build")
    args = parser.parse_args(argv)
    result = build(args.root, mode="fast" if args.fast else "full", stream=True, output=args.output)
    if not result.ok:
        print(result.failure_report(tail=0), file=sys.stderr)
        print(f"book build FAILED after {_clock(result.seconds)}", file=sys.stderr)
        return 1
    executed = [e for e in result.executions.values() if e.status == "executed"]
    print(f"book built in {_clock(result.seconds)} ({result.mode} mode): {len(executed)} "
          f"notebook(s) executed, {len(result.executions) - len(executed)} from the cache")
    print(result.index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
