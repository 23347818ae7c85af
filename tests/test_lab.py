"""JupyterLab with jupytext (``make lab``): the server serves a MyST ``.md`` as a notebook.

The test starts JupyterLab exactly as ``make lab`` does (``scripts/start_lab.py``), bound to
127.0.0.1 on a free port with a token and no browser, and fetches a notebook's ``.md`` through
the contents API with ``type=notebook``. It also checks that the lab settings make jupytext's
notebook the default viewer of Markdown files, that the lab asks no website for news, and that
jupyterlab-myst is enabled. What the page then shows, in a browser, is
tests/test_lab_browser.py.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import jupytext
import pytest
from lab_server import running_lab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import start_lab


def _get(url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read().decode())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """JupyterLab on the repository's notebooks/."""
    notebooks = [md for md in sorted((ROOT / "notebooks").glob("*.md"))
                 if "kernelspec" in jupytext.read(md).metadata]
    assert notebooks, "no MyST notebooks in notebooks/"
    with running_lab(ROOT, tmp_path_factory.mktemp("lablog") / "lab.log") as (base, token):
        yield base, token, notebooks[0], ROOT


def test_md_notebook_served_as_notebook(server):
    base, token, md, _ = server
    status, model = _get(f"{base}/api/contents/{md.name}?type=notebook&content=1", token)
    assert status == 200
    assert model["type"] == "notebook" and model["format"] == "json"
    content = model["content"]
    assert content["metadata"]["kernelspec"]["name"] == "python3"
    expected = jupytext.read(md)
    assert len(content["cells"]) == len(expected.cells)
    sources = [c["source"] for c in content["cells"] if c["cell_type"] == "code"]
    assert sources == [c.source for c in expected.cells if c.cell_type == "code"]


def test_markdown_opens_with_jupytext_by_default(server):
    base, token, _, _ = server
    status, setting = _get(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin",
                           token)
    assert status == 200
    viewers = setting["settings"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"
    status, _ = _get(f"{base}/lab/api/settings/jupyterlab-jupytext:plugin", token)
    assert status == 200  # jupytext's lab extension is installed and known to the server


def test_no_news_and_myst_enabled(server):
    base, token, _, _ = server
    status, setting = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification",
                           token)
    assert status == 200
    assert setting["settings"]["fetchNews"] == "false"
    assert setting["settings"]["checkForUpdates"] is False
    status, extensions = _get(f"{base}/lab/api/extensions?refresh=0", token)
    assert status == 200
    myst = [e for e in extensions if e["name"] == "jupyterlab-myst"]
    assert myst and myst[0]["enabled"] and myst[0]["installed"]


def test_missing_package_is_named(monkeypatch, capsys):
    monkeypatch.setitem(start_lab.REQUIRED, "no_such_module_for_the_lab", "no-such-package")
    with pytest.raises(SystemExit) as exit_info:
        start_lab.main(["--port", "1"])
    assert exit_info.value.code == 2
    assert "no-such-package" in capsys.readouterr().err
