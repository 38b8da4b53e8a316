"""pytest plugin: which tests share a pytest-xdist worker (`make test`: `-n 2 --dist loadfile`).

Each worker is a pytest session of its own, with its own databases (tests/support/databases.py
names them at random), engines and event loop. `--dist loadfile` keeps a file's tests on one
worker, in their order, so a module-scoped fixture (a seeded database, a started server) is
built once and no test meets another module's state mid-way. This plugin adds to it: the
tests of one machine-wide resource share one worker too. Without xdist it does nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

# Where the tests of a shared resource live (a folder, or the end of a file's path), and
# the resource.
SHARED_RESOURCES = {
    # tests/events/test_faults.py stops and restarts RabbitMQ: no other test may use it then.
    "tests/events/": "rabbitmq",
    "bench/test_bench.py": "rabbitmq",  # the benchmark's pg-events workload publishes to it
    # One pg_auto_failover formation per session (tests/support/formation.py).
    "tests/ha/": "formation",
}


def group_of(nodeid: str) -> str:
    """The group of a test: its shared resource's, or its file."""
    path = nodeid.split("::", 1)[0]
    for place, resource in SHARED_RESOURCES.items():
        if path.startswith(place) or path.endswith(place):
            return resource
    return path


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own choice
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` with the shared resources' groups; any other mode is xdist's."""
    if config.getvalue("dist") != "loadfile":
        return None
    # xdist's loadgroup mode would take markers, but it renames node ids to do so, which
    # pytest 9.2 no longer lets it (pytest-dev/pytest-xdist#1386): group by node id here.
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return Grouped(config, log)
