"""Input checks at the service boundary. Each raises a typed error before any IO happens."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Collection, Mapping
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
    SameAccount,
)

# Balances are signed 64-bit integers on both engines.
MAX_AMOUNT: Final = 2**63 - 1
MAX_ID: Final = 2**63 - 1
# What `currency` accepts is a subset of this (a known code); for schemas to document.
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
# How much of a refused value an error message quotes.
SHOWN_MAX_LENGTH: Final = 60

# Never stored: control characters (NUL included, which PostgreSQL refuses in text) and
# lone surrogates, which are not Unicode characters and cannot be encoded as UTF-8, so
# the driver would fail with an untyped encoding error instead of a validation error.
_NEVER_IN_TEXT: Final = frozenset({"Cc", "Cs"})
# An email may not hide characters either: format characters (zero-width space, bidi
# overrides) would let one address register twice looking the same, and private-use or
# unassigned code points have no agreed meaning.
_NEVER_IN_EMAIL: Final = _NEVER_IN_TEXT | {"Cf", "Co", "Cn"}


def shown(value: object) -> str:
    """`value` as an error message may quote it: short, and never raising.

    repr() of an int past 4,300 digits raises ValueError, a long string would flood the
    message, and a caller's own type may have a __repr__ that raises.
    """
    if isinstance(value, int) and int.bit_length(value) > 64:
        kind = "a negative int" if value < 0 else "an int"
        return f"{kind} of {int.bit_length(value)} bits"
    if isinstance(value, str):
        # Cut before repr(): a megabyte string costs nothing to refuse.
        value = str.__getitem__(value, slice(0, SHOWN_MAX_LENGTH))
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__}"
    if len(text) > SHOWN_MAX_LENGTH:
        return f"{text[: SHOWN_MAX_LENGTH - 3]}..."
    return text


def amount(value: object) -> int:
    """A positive int of minor units. `bool` is an int in Python, and refused here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(
            f"amount must be a whole number of minor units (an int), got {type(value).__name__}"
        )
    if value <= 0:
        raise InvalidAmount(f"amount must be positive, got {shown(value)}")
    if value > MAX_AMOUNT:
        raise InvalidAmount(f"amount {shown(value)} does not fit a 64-bit balance")
    return value


def identifier(value: object, what: str) -> int:
    """A positive int id."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidId(f"{what} must be a positive whole number, got {shown(value)}")
    return value


def identifiers(values: object, what: str, maximum: int) -> set[int]:
    """A collection of at most `maximum` distinct positive int ids."""
    if isinstance(values, str | bytes) or not isinstance(values, Collection):
        raise InvalidId(f"{what}s must be a collection of ids, got {type(values).__name__}")
    ids = {identifier(value, what) for value in values}
    if len(ids) > maximum:
        raise InvalidInput(f"at most {maximum} {what}s at a time, got {len(ids)}")
    return ids


def currency(value: object) -> str:
    """A known ISO-4217 code, exactly as written (three upper-case letters)."""
    if not isinstance(value, str) or value not in KNOWN_CURRENCIES:
        raise InvalidCurrency(f"{shown(value)} is not a known ISO-4217 currency code (e.g. 'EUR')")
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
        raise InvalidEmail(f"{shown(value)} is not an email address of the form name@domain")
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


def bounded(value: object, what: str, minimum: int, maximum: int) -> int:
    """A whole number from `minimum` to `maximum` (a count, a size, a limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(
            f"{what} must be a whole number from {minimum} to {maximum}, got {shown(value)}"
        )
    return value


def page_limit(value: object, maximum: int = 500) -> int:
    """A page size between 1 and `maximum`."""
    return bounded(value, "limit", 1, maximum)


def timeout(value: object) -> float | None:
    """A deadline in seconds: None (no deadline), or what `seconds` accepts: one rule for
    every duration, so a duration one part accepts is never refused by another."""
    return None if value is None else seconds(value, "timeout")


def transfer_ends(source_id: object, destination_id: object) -> tuple[int | None, int | None]:
    """The accounts of a money movement: a None source is a deposit, a None destination a
    withdrawal; at least one is needed, and not the same one twice."""
    source = None if source_id is None else identifier(source_id, "source id")
    destination = None if destination_id is None else identifier(destination_id, "destination id")
    if source is None and destination is None:
        raise InvalidInput("a transfer needs a source or a destination account")
    if source is not None and source == destination:
        raise SameAccount(f"cannot transfer from account {source} to itself")
    return source, destination


def both_ends(source: int | None, destination: int | None) -> tuple[int, int]:
    """An account-to-account transfer: both ends are required."""
    if source is None or destination is None:
        raise InvalidId("a transfer needs both accounts; use AccountService.deposit or .withdraw")
    return source, destination


# Longer than any lease, timeout or poll interval anyone means (about 115 days); beyond
# it, asyncio's timers and datetime arithmetic overflow. Compared before any conversion:
# an int too large for a float would make asyncio.timeout() raise OverflowError.
MAX_SECONDS: Final = 10**7


def seconds(value: object, what: str, *, zero: bool = False) -> float:
    """A finite number of seconds: positive (or, with `zero`, 0 or more), below MAX_SECONDS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number of seconds, got {shown(value)}")
    low_ok = value >= 0 if zero else value > 0
    if not (low_ok and value < MAX_SECONDS):  # also refuses NaN
        least = "0 or more" if zero else "a positive number of"
        raise InvalidInput(
            f"{what} must be {least} seconds, below {MAX_SECONDS}, got {shown(value)}"
        )
    return float(value)


def bounded_int(value: object, what: str, maximum: int) -> int:
    """A whole number from 1 to `maximum` (a count, a batch size, a limit)."""
    return bounded(value, what, 1, maximum)


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


def event_fields(data: Mapping[str, Any], names: Collection[str]) -> None:
    """An event's data holds exactly the fields `names` (a wrong schema is refused whole)."""
    missing = sorted(set(names) - set(data))
    extra = sorted(set(data) - set(names))
    if missing:
        raise InvalidInput(f"data lacks {', '.join(missing)}")
    if extra:
        raise InvalidInput(f"data has unknown fields {', '.join(shown(e) for e in extra[:5])}")
