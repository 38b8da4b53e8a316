"""`python -m bench` runs the benchmark."""

import sys

from bench.command import main

sys.exit(main())
