"""The FastAPI application: `create_app(settings)` and its lifespan.

Nothing is built at import time. The lifespan, once per process and event loop, creates
the engine and session factory, refuses to start unless the schema is at head, starts
one TransferBatcher (the write path of POST /transfers, unless API_BATCH_TRANSFERS is
off), and on shutdown (after the server stopped taking requests and answered those in
flight) drains the batcher and disposes of the engine.

Services own their transactions, as everywhere in this project: a route calls a service
and the service commits before the route returns. There is no request-scoped session
whose commit runs after `yield` in a dependency: FastAPI runs that code after the
response has been sent (FastAPI PR #14099), so such a commit could fail after the
client was told 200.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import MissingIdempotencyKey
from api.metrics import ApiMetrics
from api.middleware import LedgerMiddleware
from api.openapi import build_openapi
from api.problems import HTTP_PROBLEMS, for_ledger_error, http_problem, kind_of, problem
from api.routes import ROUTERS
from api.settings import ApiSettings
from api.state import AppState
from db import SettingsError, create_engine, create_session_factory
from services import TransferBatcher, ensure_migrated
from services.errors import LedgerError, PoolExhausted
from services.transactions import Sessions

log = logging.getLogger("api")

DOCS_ASSETS = "/docs/assets"


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The app for `settings` (default: from the environment)."""
    config = ApiSettings.from_env() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(config.database)
        try:
            await ensure_migrated(engine)  # SchemaNotMigrated: the server does not start
            sessions = create_session_factory(engine)
            metrics = ApiMetrics(engine, config.database.max_overflow)
            batcher = (
                TransferBatcher(sessions, on_batch=metrics.batch_size.observe)
                if config.batch_transfers
                else None
            )
            if batcher is not None:
                batcher.start()
            relay = _start_relay(config, sessions, metrics)
            app.state.ledger = AppState(config, engine, sessions, batcher, metrics)
            try:
                yield
            finally:
                # The server has stopped taking requests and answered those in flight;
                # what the batcher accepted still commits before the pool goes away, and
                # the relay finishes its batch and releases its lease.
                if batcher is not None:
                    await batcher.close()
                if relay is not None:
                    await relay.close()
                metrics.close()
        finally:
            await engine.dispose()

    # /docs is Swagger UI 5 served from fastapi-offline's own copy: no CDN, and unlike
    # swagger-ui-bundle (4.15.5, last released 2023) it renders the OpenAPI 3.1 document
    # FastAPI writes. Chosen over swagger-ui-py (an older 5.x, with Swagger Editor, 7 MB):
    # it needs nothing but FastAPI, and its API is FastAPI's own self-hosting recipe.
    app = FastAPIOffline(
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS,
        title="async-ledger",
        version="1.0.0",
        description=(
            "A ledger as an async web service. Money is an integer of minor units; "
            "errors are RFC 9457 problem documents; money-moving POSTs need an "
            "Idempotency-Key."
        ),
        lifespan=lifespan,
    )
    for router in ROUTERS:
        app.include_router(router)
    _add_error_handlers(app)
    app.add_middleware(
        LedgerMiddleware,
        max_body_bytes=config.max_body_bytes,
        metrics=lambda: getattr(getattr(app.state, "ledger", None), "metrics", None),
    )
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


def _start_relay(config: ApiSettings, sessions: Sessions, metrics: ApiMetrics) -> Any:
    """With a BROKER_URL, the outbox relay as a background task of this process (several
    workers each run one; the lease lets one publish at a time, docs/events.md)."""
    if not config.broker.enabled:
        return None
    try:
        from services.relay import OutboxRelay  # the events extra: only when a broker is set
    except ImportError:
        raise SettingsError(
            "BROKER_URL is set but aio-pika is not installed: pip install 'async-ledger[events]'"
        ) from None

    relay = OutboxRelay(sessions, config.broker, listen_url=config.database.listen_url)
    metrics.watch_relay(lambda: relay.stats)
    relay.start()
    return relay


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> Response:
        if isinstance(exc, PoolExhausted):
            state: AppState | None = getattr(request.app.state, "ledger", None)
            if state is not None:
                state.metrics.pool_timeouts.inc()
        if kind_of(exc).status >= 500:
            log.warning("%s [request id %s]: %s", type(exc).__name__, _request_id(request), exc)
        return for_ledger_error(exc, request_id=_request_id(request))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # Not the offending input itself: it could be large, or a secret sent by mistake.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return http_problem(
            "validation-error",
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)[:1000],
            request_id=_request_id(request),
            errors=errors,
        )

    @app.exception_handler(MissingIdempotencyKey)
    async def missing_key(request: Request, exc: MissingIdempotencyKey) -> Response:
        return http_problem(
            "idempotency-key-missing",
            "a POST that moves money needs an Idempotency-Key header",
            request_id=_request_id(request),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode (e.g. not UTF-8): the same
            # kind of error as malformed JSON, so a client gets the same 422 for both.
            return http_problem(
                "validation-error",
                f"body: {exc.detail}",
                request_id=_request_id(request),
                errors=[{"loc": ["body"], "msg": str(exc.detail), "type": "body_undecodable"}],
            )
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(
            exc.status_code, "bad-request" if exc.status_code < 500 else "internal"
        )
        kind = HTTP_PROBLEMS[slug]
        if kind.status != exc.status_code:
            kind = type(kind)(exc.status_code, slug, kind.title)
        return problem(
            kind,
            str(exc.detail),
            request_id=_request_id(request),
            headers=dict(exc.headers or {}),
        )


def app_from_env() -> FastAPI:
    """The factory `ledgerctl serve` hands to uvicorn (`api.app:app_from_env`)."""
    return create_app(ApiSettings.from_env())
