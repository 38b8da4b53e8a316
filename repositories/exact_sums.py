"""Sums of 64-bit columns that are exact on both engines, however much money moved.

SQLite's SUM() over integers raises "integer overflow" once a total passes 2**63 - 1, and
its TOTAL() is a float, exact only to 2**53. Every amount and balance fits 63 bits, so
each is split into its high and low 32 bits, summed as two columns, and put back together
in Python, whose ints do not overflow. Each half-sum stays below 2**63 for fewer than
2**31 summed rows; past that SQLite still raises rather than return a wrong total.
PostgreSQL's SUM of BIGINT is already an exact NUMERIC, so it gets one plain SUM in the
low half.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import BigInteger, ColumnElement, Integer, func, literal
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

_LOW_BITS: Final = 32
_LOW_MASK: Final = 2**_LOW_BITS - 1
MAX_SUMMED_ROWS: Final = 2**31 - 1
"""How many rows a sum may cover and stay exact on SQLite."""


def split_sum(
    session: AsyncSession, value: ColumnElement[Any] | QueryableAttribute[Any], name: str
) -> tuple[ColumnElement[Any], ...]:
    """Two labelled aggregate columns, `<name>_high` and `<name>_low`, for a query run on
    `session`'s engine; join them with `joined()`."""
    if session.get_bind().dialect.name == "postgresql":
        return literal(0, Integer).label(f"{name}_high"), func.sum(value).label(f"{name}_low")
    high = func.sum(value.bitwise_rshift(literal(_LOW_BITS, Integer)))
    low = func.sum(value.bitwise_and(literal(_LOW_MASK, BigInteger)))
    return high.label(f"{name}_high"), low.label(f"{name}_low")


def joined(high: object, low: object) -> int:
    """The exact sum from its two halves; None (no rows, or an outer join's gap) is 0."""
    return (_as_int(high) << _LOW_BITS) + _as_int(low)


def _as_int(value: object) -> int:
    # SUM over BIGINT is NUMERIC on PostgreSQL (a Decimal here), an int on SQLite.
    return 0 if value is None else int(value)  # type: ignore[call-overload]
