"""`python -m lab.new_service DEST [--check [--whole-suite]]` (`make new-service DEST=...`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lab.new_service.check import CheckFailed, check, link_virtualenv
from lab.new_service.generate import RuleFailed, generate

NEXT_STEPS = """next: cd {dest} && git init && make test
rename it: the distribution `async-ledger`, the command `ledgerctl`, the problem URNs
(`urn:async-ledger:`); then replace the example domain
(docs/new-service.md in this checkout says how)"""


def main(argv: Sequence[str] | None = None) -> int:
    """Write the new project, and with --check prove it with its own lint and tests."""
    parser = argparse.ArgumentParser(prog="new-service", description=__doc__)
    parser.add_argument("destination", type=Path, help="the new project's folder (must not exist)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="then run its make lint and tests on this virtualenv (linked in as its .venv)",
    )
    parser.add_argument("--whole-suite", action="store_true", help="with --check: every test")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        for line in generate(args.destination):
            print(line)
        if args.check:
            link_virtualenv(args.destination)
            for line in check(args.destination, whole_suite=args.whole_suite):
                print(line)
    except (RuleFailed, CheckFailed) as exc:
        print(f"new-service: error: {exc}", file=sys.stderr)
        return 1
    print(f"new-service: done in {time.perf_counter() - started:.0f}s")
    if not args.check:
        print(NEXT_STEPS.format(dest=args.destination))
    return 0


if __name__ == "__main__":
    sys.exit(main())
