"""Hypothesis strategies of arbitrary Python values: what a hostile caller may pass."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st


class SubInt(int):
    """An int subclass: `isinstance(x, int)` holds, the type is not int."""


class SubStr(str):
    """A str subclass."""

    __slots__ = ()


class Weird:
    """An object whose comparisons and hashing work but whose str() fails."""

    def __str__(self) -> str:
        raise RuntimeError("str() of Weird")

    def __repr__(self) -> str:
        return "Weird()"


EDGE_INTS: list[int] = [
    0,
    1,
    -1,
    2,
    127,
    128,
    255,
    256,
    2**15,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 2,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
]


def power_of_ten(exponent: int) -> int:
    """10**|exponent|, negative for a negative exponent."""
    magnitude: int = 10 ** abs(exponent)
    return -magnitude if exponent < 0 else magnitude


huge_ints: st.SearchStrategy[int] = st.sampled_from([400, -400, 4_300, -5_000]).map(power_of_ten)
"""Ints past float range (float() raises OverflowError, as asyncio.timeout() did) and past
sys.get_int_max_str_digits() (repr() raises ValueError). Drawn by exponent: Hypothesis
quotes a strategy's constants in its own repr, which would raise."""
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, 1e-300, 5e-324, 1e308, math.inf, -math.inf, math.nan]
ODD_TEXT = [
    "",
    " ",
    "\x00",
    "\t",
    "EUR",
    "eur",
    " EUR",
    "EUR\x00",
    "\ud800",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\U0001f4b6",
    "e\u0301",
    "\u0661\u0660\u0660",
    "1_000",
    "+100",
    "-0",
    "0x10",
    "1e3",
    "NaN",
    "'; DROP TABLE transfers; --",
    "x" * 129,
    "x" * 501,
]

odd_unicode = st.text(
    st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Mn", "Nd"]),
    max_size=8,
)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_INTS).map(SubInt),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(EDGE_FLOATS),
    st.complex_numbers(max_magnitude=1e10),
    st.decimals(allow_nan=True, allow_infinity=True, places=2),
    st.fractions(max_denominator=10),
    st.text(max_size=20),
    odd_unicode,
    st.sampled_from(ODD_TEXT),
    st.sampled_from(ODD_TEXT).map(SubStr),
    st.binary(max_size=10),
    st.binary(max_size=10).map(bytearray),
    st.datetimes(),
    st.just(Ellipsis),
    st.just(NotImplemented),
    st.builds(object),
    st.builds(Weird),
    st.sampled_from([int, str, type, print, range(3)]),
)
junk: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.frozensets(st.integers(min_value=-3, max_value=3), max_size=3),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
    ),
    max_leaves=4,
)
"""Any Python value: every built-in kind, subclasses, edge numbers, odd text, containers."""
