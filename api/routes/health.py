"""/healthz, /readyz and /metrics: for load balancers and Prometheus, no token."""

from __future__ import annotations

from asyncio import timeout as asyncio_timeout

from fastapi import APIRouter, Response

from api.deps import State
from api.metrics import CONTENT_TYPE
from api.problems import ProblemKind, problem
from api.schemas import Problem, StatusOut
from db import migrations
from services import ensure_migrated
from services.errors import LedgerError, SchemaNotMigrated
from services.event_outbox import EventOutbox

router = APIRouter(tags=["health"])
_NOT_READY = ProblemKind(503, "not-ready", "The database is unreachable or not migrated", True)


@router.get("/healthz", response_model=StatusOut, response_model_exclude_none=True)
async def healthz() -> StatusOut:
    """The process is up (it says nothing of the database)."""
    return StatusOut(status="ok")


@router.get(
    "/readyz",
    response_model=StatusOut,
    responses={503: {"model": Problem, "content": {"application/problem+json": {}}}},
)
async def readyz(state: State) -> StatusOut | Response:
    """The database answers and its schema is at this code's head revision; else 503."""
    try:
        async with asyncio_timeout(state.settings.request_timeout):
            await ensure_migrated(state.engine)
    except SchemaNotMigrated as exc:
        return problem(_NOT_READY, str(exc))
    except Exception as exc:  # unreachable, timed out, refused: all mean "not ready"
        return problem(_NOT_READY, f"the database did not answer: {type(exc).__name__}")
    return StatusOut(status="ready", revision=migrations.head_revision())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(state: State) -> Response:
    """Prometheus text: pool, batcher, the event outbox, and requests by route and status
    with latency."""
    try:
        outbox = await EventOutbox(state.sessions).state(
            failed=0, timeout=state.settings.request_timeout
        )
    except LedgerError:  # the database is down: the rest of the scrape still tells
        pass
    else:
        state.metrics.set_outbox(outbox.pending, outbox.failed)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
