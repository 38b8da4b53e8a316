"""`python -m cli` runs ledgerctl."""

import sys

from cli.main import main

sys.exit(main())
