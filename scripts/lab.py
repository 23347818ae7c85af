"""Open JupyterLab on notebooks/ with jupytext (``make lab``).

Usage::

    python scripts/lab.py [--port N] [extra JupyterLab options...]

Jupytext's server extension (installed with the ``course`` extra) serves the MyST ``.md``
files through the contents API as notebooks, and the lab setting below makes "Jupytext
Notebook" the default viewer of Markdown files, so a double click opens ``NN_slug.md`` as a
notebook. The settings and workspaces live in ``_build/lab/`` (nothing in your home folder is
changed). Outputs are not written back into the ``.md`` files; the paired ``.ipynb`` (git-ignored)
keeps them, as configured in ``[tool.jupytext]`` of pyproject.toml.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: JupyterLab user setting: open Markdown / MyST files with jupytext's notebook factory.
DOCMANAGER_SETTINGS = {
    "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
}


def write_lab_settings(root: Path = ROOT) -> Path:
    """Write the lab user settings under ``<root>/_build/lab``; return the settings folder."""
    settings = Path(root) / "_build" / "lab" / "user-settings"
    target = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(DOCMANAGER_SETTINGS, indent=2) + "\n")
    return settings


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    port = 8888
    if "--port" in argv:
        index = argv.index("--port")
        port = int(argv[index + 1])
        del argv[index:index + 2]
    command = lab_command(ROOT, port=port, extra=argv)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
