"""Build the Jupyter Book (``make book``, ``make book FULL=1``, and ``tests/test_book.py``).

Usage::

    python scripts/build_book.py [--full] [--root DIR]

The book is Jupyter Book 1, built from the repository root with
``jb build . --config <config> --toc book/_toc.yml -W -n --keep-going``. Notebooks run in
fast mode (``SCOREFUSION_FAST=1``) unless ``--full`` is given. jupyter-cache must never mix
the two modes, so the effective config is ``book/_config.yml`` with only ``execute.cache``
(one folder per mode, ``_build/.jupyter_cache/<mode>``) and ``execute.timeout`` (per cell)
changed; it is written to ``_build/book-config/<mode>/_config.yml``. Sphinx's own incremental
state knows neither the mode nor a failed previous build, so a build after a build in the other
mode, or after a failed one, re-renders every page (``--all``); executions stay cached per mode.

On failure the execution reports (``_build/html/reports/*.log``) written by this build are
printed, and the exit status is non-zero. On success the last line printed is the path of
``index.html``.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: Per-cell timeout in seconds: fast mode (the tests) and the full-size runs (CPU training).
CELL_TIMEOUT = {"fast": 600, "full": 3600}


@dataclass
class BookBuild:
    """The outcome of one ``jb build``."""

    mode: str
    returncode: int
    output: str
    seconds: float
    html: Path
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and (self.html / "index.html").exists()

    @property
    def index(self) -> Path:
        return self.html / "index.html"

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


def effective_config(root: Path, mode: str) -> Path:
    """Write book/_config.yml with the per-mode cache folder and cell timeout; return its path."""
    config = yaml.safe_load((root / "book" / "_config.yml").read_text())
    execute = config.setdefault("execute", {})
    execute["cache"] = str(root / "_build" / ".jupyter_cache" / mode)
    execute["timeout"] = CELL_TIMEOUT[mode]
    # local_extensions paths are relative to the config file: make them absolute.
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((root / "book" / path).resolve())
    target = root / "_build" / "book-config" / mode / "_config.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def build(root: Path = ROOT, mode: str = "fast", stream: bool = False) -> BookBuild:
    """Build the book of the repository at ``root`` in ``mode`` ("fast" or "full")."""
    if mode not in CELL_TIMEOUT:
        raise ValueError(f"mode must be one of {sorted(CELL_TIMEOUT)}, got {mode!r}")
    root = Path(root).resolve()
    html = root / "_build" / "html"
    config = effective_config(root, mode)
    marker = root / "_build" / ".book-mode"
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
               "--toc", str(root / "book" / "_toc.yml"), "-W", "-n", "--keep-going"]
    # Sphinx re-reads only changed sources, so it would not repeat the warnings of a failed
    # build, nor notice a change of mode: after either, re-render every page (executions stay
    # cached per mode, so this costs seconds per page, not re-execution).
    if previous != f"{mode}:ok" and html.exists():
        command.append("--all")

    start = time.time()
    lines: list[str] = []
    with subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if stream:
                sys.stdout.write(line)
                sys.stdout.flush()
    seconds = time.time() - start
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{mode}:{'ok' if process.returncode == 0 else 'failed'}")

    reports = {}
    report_dir = html / "reports"
    if report_dir.is_dir():
        for path in sorted(report_dir.rglob("*.log")):
            if path.stat().st_mtime >= start - 1:
                reports[str(path.relative_to(root))] = path.read_text(errors="replace")
    return BookBuild(mode, process.returncode, "".join(lines), seconds, html, reports)


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


@functools.cache
def build_for_tests(root: str = str(ROOT)) -> BookBuild:
    """One fast-mode build per test session, shared by tests/test_book.py and test_browser.py."""
    return build(Path(root), mode="fast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size runs (no SCOREFUSION_FAST)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    result = build(args.root, mode="full" if args.full else "fast", stream=True)
    if not result.ok:
        print(result.failure_report(tail=0), file=sys.stderr)
        print(f"book build FAILED after {result.seconds:.0f} s", file=sys.stderr)
        return 1
    print(f"book built in {result.seconds:.0f} s ({result.mode} mode)")
    print(result.index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
