"""pytest plugin: which tests share a pytest-xdist worker (`make test` runs `-n 2`).

Each worker is a pytest session of its own, with its own databases (tests/support/databases.py
names them at random), engines and event loop. A module's tests stay together on one worker,
in their order, so a module-scoped fixture (a seeded database, a started server) is built once
and no test meets another module's state mid-way. Tests of one machine-wide resource share a
worker: the RabbitMQ broker (tests/events stops and restarts it), and the pg_auto_failover
formation (tests/ha, one per session). Without xdist the markers change nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT

# A folder under tests/ whose tests all share one worker: the resource they share.
SHARED_RESOURCES = {"events": "rabbitmq", "ha": "formation"}


def group_of(path: Path) -> str:
    """The xdist group of the tests in the file at `path`."""
    if not path.is_relative_to(PROJECT_ROOT / "tests"):
        return path.as_posix()
    relative = path.relative_to(PROJECT_ROOT / "tests")
    return SHARED_RESOURCES.get(relative.parts[0], relative.as_posix())


@pytest.hookimpl(tryfirst=True)  # before xdist reads the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its group; a test may name a shared resource's group itself
    (`@pytest.mark.xdist_group("rabbitmq")`)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group_of(item.path)))
