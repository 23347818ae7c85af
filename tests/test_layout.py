"""The house's layout: the library never imports the experiments, and nothing chapter-specific lives in it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "scorefusion").rglob("*.py"))


def imported_modules(path):
    """Top-level names of every module that ``path`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_lab_or_theory_checks(path):
    assert not imported_modules(path) & {"lab", "theory_checks"}, f"{path.name} imports the layer above it"


def test_no_chapter_modules_in_library():
    names = {p.stem for p in LIBRARY}
    assert not names & {"experiments", "image_fusion"}, "chapter experiments belong in lab/"


def test_imported_modules_sees_lab(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom lab.digits import scale_config\nfrom . import x\n")
    assert imported_modules(probe) == {"os", "lab"}
