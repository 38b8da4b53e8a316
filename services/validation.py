"""Input checks at the service boundary. Each raises a typed error before any IO happens."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from models.job import KIND_MAX_LENGTH
from models.transfer import DESCRIPTION_MAX_LENGTH, IDEMPOTENCY_KEY_MAX_LENGTH
from models.user import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH
from services.currencies import KNOWN_CURRENCIES
from services.errors import (
    InvalidAmount,
    InvalidCurrency,
    InvalidEmail,
    InvalidId,
    InvalidInput,
    InvalidText,
)

# Balances are signed 64-bit integers on both engines.
MAX_AMOUNT: Final = 2**63 - 1
MAX_ID: Final = 2**63 - 1

# Never stored: control characters (NUL included, which PostgreSQL refuses in text) and
# lone surrogates, which are not Unicode characters and cannot be encoded as UTF-8, so
# the driver would fail with an untyped encoding error instead of a validation error.
_NEVER_IN_TEXT: Final = frozenset({"Cc", "Cs"})
# An email may not hide characters either: format characters (zero-width space, bidi
# overrides) would let one address register twice looking the same, and private-use or
# unassigned code points have no agreed meaning.
_NEVER_IN_EMAIL: Final = _NEVER_IN_TEXT | {"Cf", "Co", "Cn"}


def amount(value: object) -> int:
    """A positive int of minor units. `bool` is an int in Python, and refused here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(
            f"amount must be a whole number of minor units (an int), got {type(value).__name__}"
        )
    if value <= 0:
        raise InvalidAmount(f"amount must be positive, got {value}")
    if value > MAX_AMOUNT:
        raise InvalidAmount(f"amount {value} does not fit a 64-bit balance")
    return value


def identifier(value: object, what: str) -> int:
    """A positive int id."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidId(f"{what} must be a positive whole number, got {value!r}")
    return value


def currency(value: object) -> str:
    """A known ISO-4217 code, exactly as written (three upper-case letters)."""
    if not isinstance(value, str) or value not in KNOWN_CURRENCIES:
        raise InvalidCurrency(f"{value!r} is not a known ISO-4217 currency code (e.g. 'EUR')")
    return value


def email(value: object) -> str:
    """Trimmed and lower-cased, so one address cannot register twice in another case."""
    if not isinstance(value, str):
        raise InvalidEmail(f"email must be text, got {type(value).__name__}")
    if any(ch.isspace() or unicodedata.category(ch) in _NEVER_IN_EMAIL for ch in value.strip()):
        raise InvalidEmail("email must not contain spaces, control or invisible characters")
    normalised = unicodedata.normalize("NFC", value.strip()).lower()
    if not normalised:
        raise InvalidEmail("email must not be empty")
    if len(normalised) > EMAIL_MAX_LENGTH:
        raise InvalidEmail(f"email must be at most {EMAIL_MAX_LENGTH} characters")
    local, at, domain = normalised.rpartition("@")
    if not at or not local or not domain or "." not in domain.strip("."):
        raise InvalidEmail(f"{value!r} is not an email address of the form name@domain")
    return normalised


def text(value: object, what: str, max_length: int, *, required: bool) -> str | None:
    """Free text: no control characters (NUL included), at most `max_length` characters."""
    if value is None:
        if required:
            raise InvalidText(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidText(f"{what} must be text, got {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned:
        raise InvalidText(f"{what} must not be empty")
    if len(cleaned) > max_length:
        raise InvalidText(f"{what} must be at most {max_length} characters, got {len(cleaned)}")
    categories = {unicodedata.category(ch) for ch in cleaned}
    if "Cs" in categories:
        raise InvalidText(f"{what} must be valid Unicode text (it holds a lone surrogate)")
    if categories & _NEVER_IN_TEXT:
        raise InvalidText(f"{what} must not contain control characters")
    return cleaned


def name(value: object) -> str:
    """A user's display name."""
    result = text(value, "name", NAME_MAX_LENGTH, required=True)
    assert result is not None
    return result


def description(value: object) -> str | None:
    """An optional transfer description."""
    return text(value, "description", DESCRIPTION_MAX_LENGTH, required=False)


def idempotency_key(value: object) -> str | None:
    """An optional idempotency key, compared exactly (not trimmed: it is the client's token)."""
    if value is None:
        return None
    if isinstance(value, str) and value != value.strip():
        raise InvalidText("idempotency_key must not start or end with white space")
    return text(value, "idempotency_key", IDEMPOTENCY_KEY_MAX_LENGTH, required=False)


def page_limit(value: object, maximum: int = 500) -> int:
    """A page size between 1 and `maximum`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"limit must be a whole number from 1 to {maximum}, got {value!r}")
    return value


# Longer than any lease, timeout or poll interval anyone means (about 115 days); beyond
# it, asyncio's timers and datetime arithmetic overflow.
MAX_SECONDS: Final = 10**7


def seconds(value: object, what: str, *, zero: bool = False) -> float:
    """A finite number of seconds: positive (or, with `zero`, 0 or more), below MAX_SECONDS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number of seconds, got {value!r}")
    low_ok = value >= 0 if zero else value > 0
    if not (low_ok and value < MAX_SECONDS):  # also refuses NaN
        least = "0 or more" if zero else "a positive number of"
        raise InvalidInput(f"{what} must be {least} seconds, below {MAX_SECONDS}, got {value!r}")
    return float(value)


def bounded_int(value: object, what: str, maximum: int) -> int:
    """A whole number from 1 to `maximum` (a count, a batch size, a limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"{what} must be a whole number from 1 to {maximum}, got {value!r}")
    return value


def job_payload_json(value: object) -> tuple[dict[str, Any], str]:
    """A job payload (a mapping with string keys that survives a JSON round trip), and
    the JSON text it is stored as."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("a job payload must be a mapping with string keys")
    try:
        # Round-trip now, so a payload that cannot be stored fails here and not at commit.
        encoded = json.dumps(dict(value), allow_nan=False)
        loaded: dict[str, Any] = json.loads(encoded)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a job payload must be JSON: {exc}") from None
    return loaded, encoded


def job_kind(value: object) -> str:
    """A job kind: required text, at most the column's length."""
    result = text(value, "job kind", KIND_MAX_LENGTH, required=True)
    assert result is not None
    return result


def aware_datetime(value: object, what: str) -> datetime:
    """A timezone-aware datetime (a naive one is ambiguous between the two engines)."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime")
    return value
