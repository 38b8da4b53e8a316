"""Query plans of what a repository method really sends: the statement is captured on its
way to the driver and explained on the same connection, with the same parameters."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Plan:
    """SQLite: the EXPLAIN QUERY PLAN details. PostgreSQL: every node of EXPLAIN ANALYZE."""

    lines: tuple[str, ...]
    nodes: tuple[dict[str, Any], ...]

    def rows_read(self, table: str) -> int:
        """PostgreSQL: rows the executor read from `table`'s scans (kept or filtered out),
        counted by EXPLAIN ANALYZE: deterministic, unlike a time."""
        return sum(
            (int(n["Actual Rows"]) + int(n.get("Rows Removed by Filter", 0)))
            * int(n["Actual Loops"])
            for n in self.nodes
            if n.get("Relation Name") == table
        )

    def describe(self) -> str:
        """The plan, one node a line, for an assertion's message."""
        keys = "Node Type,Index Name,Actual Rows,Actual Loops,Rows Removed by Filter,Index Cond"
        keys += ",Filter,Subplan Name"
        return "\n".join(str({k: n[k] for k in keys.split(",") if k in n}) for n in self.nodes)


async def plan_of(session: AsyncSession, read: Callable[[], Awaitable[object]]) -> Plan:
    """The plan of the last statement `read()` sends on `session`'s connection."""
    connection = await session.connection()
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(connection.sync_connection, "before_cursor_execute", capture)
    try:
        await read()
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    if connection.dialect.name == "sqlite":
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return Plan(lines=tuple(str(row[-1]) for row in rows), nodes=())
    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) "
    (document,) = (await connection.exec_driver_sql(explain + statement, parameters)).one()
    tree = json.loads(document) if isinstance(document, str) else document
    nodes = tuple(_walk(tree[0]["Plan"]))
    return Plan(lines=tuple(str(n["Node Type"]) for n in nodes), nodes=nodes)


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _walk(child)
