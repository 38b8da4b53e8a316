"""`ledgerctl bench` fronts bench/, a tool of the repository that `pip install .` leaves out.

In a checkout (an editable install or `python -m cli`) bench/ sits next to cli/, so it is
found there; an installed copy has no bench/ and the command says so in one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent

BENCH_NOT_INSTALLED = (
    "the benchmark is a tool of the repository and is not installed with the package; "
    "run `ledgerctl bench` from a checkout (make install)"
)


def make_bench_importable() -> bool:
    """Whether `import bench` works, after adding the checkout this CLI runs from to the
    end of sys.path if bench/ is there; False in an installed copy."""
    if importlib.util.find_spec("bench") is not None:
        return True
    if not (CHECKOUT / "bench" / "__init__.py").is_file():
        return False
    # Appended, not prepended: nothing already importable is shadowed by the checkout.
    sys.path.append(str(CHECKOUT))
    importlib.invalidate_caches()
    return True
