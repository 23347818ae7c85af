"""Open JupyterLab on notebooks/ with jupytext and MyST rendering (``make lab``).

Usage::

    python scripts/start_lab.py [--port N] [--root DIR] [extra JupyterLab options...]

Jupytext's server extension (installed with the ``course`` extra) serves the MyST ``.md``
files through the contents API as notebooks, and the lab setting below makes "Jupytext
Notebook" the default viewer of Markdown files, so a double click opens ``NN_slug.md`` as a
notebook. ``jupyterlab-myst`` (also in the ``course`` extra) renders the markdown cells as MyST:
labels, math, equation references, admonitions, and the proof and exercise directives the book
uses (``book/assignments.md`` lists what renders and what does not). The settings and
workspaces live in ``<root>/_build/lab/`` (nothing in your home folder is changed); the lab
never contacts jupyter.org for news or updates. Saving writes the ``.md`` back: its text and
code, not the outputs (MyST Markdown keeps none).

``--root`` serves ``DIR/notebooks`` instead of the repository's (the browser test runs copies
of the chapters there, so that saving in the lab never touches the tracked files).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: JupyterLab user settings, by plugin: Markdown / MyST files open with jupytext's notebook
#: factory, and no request for news or updates leaves the machine.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {
        "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"},
    },
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

#: The Python packages ``make lab`` needs (the ``course`` extra), by import name.
REQUIRED = {"jupyterlab": "jupyterlab", "jupytext": "jupytext",
            "jupyterlab_myst": "jupyterlab-myst", "nbgrader": "nbgrader"}


def write_lab_settings(root: Path = ROOT) -> Path:
    """Write the lab user settings under ``<root>/_build/lab``; return the settings folder."""
    settings = Path(root) / "_build" / "lab" / "user-settings"
    for plugin, values in LAB_SETTINGS.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2) + "\n")
    return settings


def missing_packages() -> list[str]:
    """The distributions of :data:`REQUIRED` that this interpreter cannot import."""
    return [dist for module, dist in REQUIRED.items()
            if importlib.util.find_spec(module) is None]


def lab_command(root: Path = ROOT, port: int = 8888, extra: list[str] | None = None) -> list[str]:
    """The command line that starts JupyterLab on ``<root>/notebooks`` bound to 127.0.0.1."""
    root = Path(root).resolve()
    settings = write_lab_settings(root)
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={settings.parent / 'workspaces'}",
        *as_root,
        *(extra or []),
    ]


def main(argv: list[str] | None = None) -> None:
    """Parse the options and replace this process by JupyterLab."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="folder whose notebooks/ the lab serves (default: the repository)")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    missing = missing_packages()
    if missing:
        parser.exit(2, f"missing packages {missing}: run `make lab`, or "
                       f"`pip install -e '.[course]'` in the project's environment\n")
    command = lab_command(args.root, port=args.port, extra=extra)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
