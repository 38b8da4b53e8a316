"""The rule for result types (services/results.py): checked over the code, not only stated.

Every public method of a service class returns results declared in services/results.py
(frozen, slotted dataclasses deriving from `Result`), plain values, or containers of
them: never an ORM object or a repository's row.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import importlib
import inspect
import pkgutil
import types
import typing
from datetime import UTC, datetime

import pytest

import services
from models import User
from services import results
from services.errors import LedgerError
from services.results import Result, UserRecord

PLAIN = (int, str, bool, float, bytes, type(None), datetime)
CONTAINERS = (tuple, list, dict, set, frozenset)
# A stream of results; a @contextmanager method is annotated with what it yields too.
STREAMS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncGenerator,
    collections.abc.Iterator,
    collections.abc.Generator,
)


def _result_classes() -> list[type]:
    return [
        value
        for value in vars(results).values()
        if inspect.isclass(value) and value.__module__ == results.__name__ and value is not Result
    ]


def _service_methods() -> list[typing.Any]:
    found = []
    for info in pkgutil.walk_packages(services.__path__, prefix="services."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            if issubclass(cls, BaseException) or cls.__name__.startswith("_"):
                continue
            for name, member in vars(cls).items():
                function = member.__func__ if isinstance(member, classmethod) else member
                if not name.startswith("_") and inspect.isfunction(function):
                    qualified = f"{cls.__qualname__}.{name}"
                    found.append(pytest.param(qualified, cls, function, id=qualified))
    return found


def _leaves(annotation: typing.Any) -> list[typing.Any]:
    origin = typing.get_origin(annotation)
    if annotation is None:
        return [type(None)]
    if origin is None:
        return [annotation]
    if origin in CONTAINERS or origin in STREAMS or origin in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in _leaves(arg)]
    return [annotation]


def _allowed(leaf: typing.Any, owner: type) -> bool:
    if leaf is Ellipsis or leaf is owner or leaf is typing.Self:
        return True
    if not inspect.isclass(leaf):
        return False
    return (
        leaf in PLAIN
        or leaf in CONTAINERS
        or issubclass(leaf, LedgerError)
        or (leaf.__module__ == results.__name__ and issubclass(leaf, Result))
    )


def test_every_result_is_a_frozen_slotted_dataclass_deriving_from_result() -> None:
    classes = _result_classes()
    assert classes
    for cls in classes:
        assert issubclass(cls, Result), cls
        assert dataclasses.is_dataclass(cls), cls
        assert cls.__dataclass_params__.frozen, cls
        assert "__slots__" in vars(cls), cls


@pytest.mark.parametrize(("name", "owner", "function"), _service_methods())
def test_service_methods_return_only_results_or_plain_values(
    name: str, owner: type, function: typing.Any
) -> None:
    annotation = typing.get_type_hints(function).get("return")
    refused = [leaf for leaf in _leaves(annotation) if not _allowed(leaf, owner)]
    assert refused == [], f"{name} returns {refused}"


def test_of_copies_the_declared_fields_of_an_orm_object_and_nothing_else() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    user = User(id=7, email="a@b.c", name="Ada", created_at=created, role="user")
    assert UserRecord.of(user) == UserRecord(id=7, email="a@b.c", name="Ada", created_at=created)
