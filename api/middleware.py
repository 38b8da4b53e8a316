"""The outermost layer of every request: request id, body limits, metrics, last resort.

A pure ASGI middleware (not BaseHTTPMiddleware, which runs the app in another task and
so breaks cancellation and context variables). It refuses a body over the limit (413)
or of a non-JSON type (415) before the app reads it, and turns any exception the app did
not handle into a 500 problem that names only the request id; the exception itself, with
its traceback, goes to the log under that id.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ApiMetrics
from api.problems import http_problem
from db import format_lsn, parse_lsn, start_position

log = logging.getLogger("api")

REQUEST_ID_HEADER: Final = "x-request-id"
# The caller's read-your-writes position (db/replicas.py): answered after every request
# that wrote, sent back by the client so that its later reads, wherever they run, see
# its writes. docs/high-availability.md.
READ_AFTER_HEADER: Final = "ledger-read-after"
_SAFE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class LedgerMiddleware:
    """Request id, 413/415, metrics by route template, and the 500 of last resort."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Any) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Request ids: a random prefix per app (so per process) and a counter, unique
        # without a uuid4 per request (its urandom call cost 1-3% of a read's CPU).
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count(1)
        # Resolved per request: the metrics object is made by the lifespan, after this.
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER, "")
        request_id = (
            given if _SAFE_REQUEST_ID.fullmatch(given) else f"{self._id_prefix}{next(self._ids):x}"
        )
        scope.setdefault("state", {})["request_id"] = request_id
        given_position = headers.get(READ_AFTER_HEADER)
        position = start_position(None if given_position is None else parse_lsn(given_position))
        started = time.perf_counter()
        status = {"code": 500, "sent": False, "refused": False}

        async def send_with_id(message: Message) -> None:
            if status["refused"]:
                return  # we answered 413 mid-body; the app's own answer goes nowhere
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
                if position.lsn is not None:
                    message["headers"].append(
                        (READ_AFTER_HEADER.encode(), format_lsn(position.lsn).encode())
                    )
            await send(message)

        try:
            refusal = self._refusal(scope, headers, request_id)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                # Only a method that may carry a body has one to count.
                limited = (
                    self._limited(scope, receive, send_with_id, status)
                    if scope["method"] in _BODY_METHODS
                    else receive
                )
                await self.app(scope, limited, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in request %s %s [request id %s]",
                scope["method"],
                scope["path"],
                request_id,
            )
            if not status["sent"]:
                response = http_problem(
                    "internal",
                    "an unexpected error occurred; quote the request id when reporting it",
                    request_id=request_id,
                )
                await response(scope, receive, send_with_id)
        finally:
            metrics: ApiMetrics | None = self._metrics()
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.requests.labels(scope["method"], template, str(status["code"])).inc()
                metrics.latency.labels(scope["method"], template).observe(
                    time.perf_counter() - started
                )

    def _refusal(self, scope: Scope, headers: dict[str, str], request_id: str) -> Any:
        given_position = headers.get(READ_AFTER_HEADER)
        if given_position is not None and parse_lsn(given_position) is None:
            return http_problem(
                "bad-request",
                "Ledger-Read-After must be a WAL position as a response gave it, e.g. 0/16B3748",
                request_id=request_id,
            )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large(request_id)
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        if (
            scope["method"] in _BODY_METHODS
            and has_body
            and not _is_json(headers.get("content-type", ""))
        ):
            return http_problem(
                "unsupported-media-type",
                "send the body as application/json",
                request_id=request_id,
            )
        return None

    def _too_large(self, request_id: str) -> Any:
        return http_problem(
            "body-too-large",
            f"the request body must be at most {self.max_body_bytes} bytes",
            request_id=request_id,
        )

    def _limited(
        self, scope: Scope, receive: Receive, send: Send, status: dict[str, Any]
    ) -> Receive:
        # A body without Content-Length (chunked) is counted as it arrives. Past the limit
        # the 413 goes out at once and the app is told the client left, so it stops
        # reading; an exception here would be taken for a malformed body (400).
        seen = 0
        request_id = scope["state"]["request_id"]

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes and not status["sent"]:
                    await self._too_large(request_id)(scope, receive, send)
                    status["refused"] = True
                    return {"type": "http.disconnect"}
            return message

        return limited
