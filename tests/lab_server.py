"""JupyterLab started as ``make lab`` starts it, for the tests that talk to a running lab."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_lab(root: Path, log: Path):
    """JupyterLab on ``root/notebooks`` started by ``scripts/start_lab.py``; yields (URL, token)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "SCOREFUSION_FAST": "1"}
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend draws the figures
    command = [sys.executable, str(ROOT / "scripts" / "start_lab.py"), "--root", str(root),
               "--port", str(port), "--no-browser", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                request = urllib.request.Request(f"{base}/api/status",
                                                 headers={"Authorization": f"token {token}"})
                urllib.request.urlopen(request, timeout=10).close()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if process.poll() is not None or time.time() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + log.read_text()[-4000:])
                time.sleep(0.5)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
