"""Error messages quote a refused value safely: short, and never raising themselves."""

from __future__ import annotations

from services.validation import SHOWN_MAX_LENGTH, shown


def test_a_value_whose_repr_raises_is_shown_by_its_type() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert shown(Hostile()) == "a Hostile"


def test_a_long_string_is_shown_cut_short() -> None:
    text = shown("x" * 1_000_000)
    assert len(text) <= SHOWN_MAX_LENGTH
    assert text.startswith("'xxx")
    assert text.endswith("...")


def test_a_huge_int_is_shown_by_its_size() -> None:
    assert shown(-(10**5000)) == "a negative int of 16610 bits"


def test_a_small_value_is_shown_as_its_repr() -> None:
    assert shown("EUR ") == "'EUR '"
