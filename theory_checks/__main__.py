"""``python -m theory_checks [--fast] [--only ID ...] [--json FILE]``: print the table."""

import argparse
import json
import sys

from . import format_table, run_claims


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m theory_checks", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="small sizes (as in the tests)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these claims")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rows = run_claims(args.only, fast=args.fast, progress=True)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"id": c.id, "statement": c.statement, "reference": c.reference,
                        "measured": r.measured, "tolerance": r.tolerance, "passed": bool(r.passed),
                        "seconds": s, "details": r.details} for c, r, s in rows], fh, indent=2, default=float)
    failed = [c.id for c, r, _ in rows if not r.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print(f"all {len(rows)} claims pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
