"""Every theory check passes in fast mode, and the runner prints its table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from theory_checks import all_claims, format_table, run_claims

CLAIMS = sorted(all_claims())


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_claim_passes_in_fast_mode(claim_id):
    [(claim, result, _)] = run_claims([claim_id], fast=True)
    assert result.passed, f"{claim.id}: measured {result.measured} vs tolerance {result.tolerance}; {result.details}"


def test_every_claim_names_a_chapter_and_reference():
    chapters = {md.stem for md in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.md")}
    for claim in all_claims().values():
        assert claim.statement and claim.reference, claim.id
        assert claim.chapter in chapters, f"{claim.id}: no notebook named {claim.chapter}"


def test_command_line_prints_table_and_json(tmp_path):
    out = tmp_path / "claims.json"
    proc = subprocess.run([sys.executable, "-m", "theory_checks", "--fast", "--only", "dsm_is_quadratic",
                           "--json", str(out)], capture_output=True, text=True, check=True)
    assert "dsm_is_quadratic" in proc.stdout and "all 1 claims pass" in proc.stdout
    assert json.loads(out.read_text())[0]["passed"] is True


def test_unknown_claim_is_an_error():
    with pytest.raises(ValueError, match="unknown claim"):
        run_claims(["no_such_claim"])


def test_table_format():
    rows = run_claims(["dsm_is_quadratic"])
    assert format_table(rows).splitlines()[1].startswith("dsm_is_quadratic")
