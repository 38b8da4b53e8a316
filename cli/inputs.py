"""Numbers from the command line: ASCII digits only.

Python's int() also reads Arabic-Indic digits ('\u0661\u0660\u0660'), '1_000' and '+100'; a ledger
should not guess what a typo meant. A leading '-' is read so that the services refuse it
with their own message ("must be positive").
"""

from __future__ import annotations

import argparse
import re
from typing import Final

from services.errors import InvalidAmount, InvalidId

_DIGITS: Final = re.compile(r"-?[0-9]+")


def _ascii_int(raw: str) -> int | None:
    if _DIGITS.fullmatch(raw) is None:
        return None
    try:
        return int(raw, 10)
    except ValueError:  # past sys.get_int_max_str_digits(): no id or amount is that long
        return None


def parse_id(raw: str, what: str) -> int:
    """An id or a count in ASCII digits, or InvalidId naming `what`."""
    value = _ascii_int(raw)
    if value is None:
        raise InvalidId(f"{what} must be a whole number in ASCII digits 0-9, got {raw!r}")
    return value


def parse_amount(raw: str) -> int:
    """Whole minor units: '1050' is 10.50. '10.5' is refused rather than guessed at."""
    value = _ascii_int(raw)
    if value is None:
        raise InvalidAmount(
            "amount must be a whole number of minor units in ASCII digits 0-9 "
            f"(e.g. 1050 for 10.50), got {raw!r}"
        )
    return value


def whole_number(raw: str) -> int:
    """An argparse `type=` for the numeric options, read like every other number here."""
    value = _ascii_int(raw)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a whole number in ASCII digits, got {raw!r}")
    return value
