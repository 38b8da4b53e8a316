"""The `ledgerctl` console script: imports the command line, then runs it.

Importing it (SQLAlchemy, the services, the API's settings) takes most of a second; a
Ctrl-C in that second would otherwise end in a KeyboardInterrupt traceback from whichever
module was loading. This module imports nothing heavy itself so that it can catch it.
"""

from __future__ import annotations

import sys

# cli/errors.py's EXIT_ERROR; not imported from there, which would load the services.
_EXIT_INTERRUPTED = 1


def main() -> int:
    """Entry point of the `ledgerctl` console script and of `python -m cli`."""
    try:
        from cli.main import main as run

        return run()
    except KeyboardInterrupt:
        print("ledgerctl: error: interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED
