"""A TCP proxy in front of PostgreSQL that can lose a COMMIT, or its answer, on purpose.

It forwards the wire protocol both ways and reads the client's messages. Armed, it acts
on the next `COMMIT` a client sends (asyncpg sends it as a simple Query):
- `before`: the connection is cut and COMMIT never reaches the server (not committed);
- `after`: COMMIT is forwarded, the server's answer read up to ReadyForQuery (committed),
  and the connection cut without passing that answer on.
Either way the client sees the same thing, a connection lost after it sent COMMIT: the
window in which a failover leaves the outcome unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.engine import make_url

Window = Literal["before", "after"]


@dataclass
class CommitProxy:
    """The running proxy: its port, and what it did."""

    target: tuple[str, int]
    port: int = 0
    armed: Window | None = None
    cut: list[Window] = field(default_factory=list)

    def url_for(self, database_url: str) -> str:
        """`database_url`, reached through the proxy."""
        return (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        downstream = asyncio.create_task(_pipe(server_r, client_w))
        upstream = asyncio.create_task(self._upstream(client_r, server_w, server_r, downstream))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
            if downstream.cancelled():  # cut "after": upstream reads the answer, then ends
                with contextlib.suppress(asyncio.IncompleteReadError, OSError):
                    await upstream
        finally:
            for task in (upstream, downstream):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _upstream(
        self,
        client_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        downstream: asyncio.Task[None],
    ) -> None:
        length = struct.unpack("!i", await client_r.readexactly(4))[0]
        server_w.write(struct.pack("!i", length) + await client_r.readexactly(length - 4))
        while True:
            header = await client_r.readexactly(5)
            body = await client_r.readexactly(struct.unpack("!i", header[1:])[0] - 4)
            window = self.armed
            if window is not None and header[:1] == b"Q" and body.upper().startswith(b"COMMIT"):
                self.armed = None
                self.cut.append(window)
                if window == "after":
                    # The answer goes nowhere from here on: this connection's pipe to the
                    # client stops (idle: the server has nothing to say before COMMIT).
                    downstream.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await downstream
                    server_w.write(header + body)
                    await server_w.drain()
                    await _read_until_ready(server_r)
                return  # closing both ends is the cut
            server_w.write(header + body)
            await server_w.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _read_until_ready(reader: asyncio.StreamReader) -> None:
    while True:
        header = await reader.readexactly(5)
        await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)
        if header[:1] == b"Z":
            return


@asynccontextmanager
async def commit_proxy(database_url: str) -> AsyncIterator[CommitProxy]:
    """A proxy in front of `database_url`'s server, on a free port, closed at the end."""
    target = make_url(database_url)
    proxy = CommitProxy((target.host or "127.0.0.1", target.port or 5432))
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    proxy.port = int(server.sockets[0].getsockname()[1])
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()
