"""`python -m lab.bench` runs the benchmark."""

import sys

from lab.bench.command import main

sys.exit(main())
