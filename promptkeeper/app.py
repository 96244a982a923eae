"""`create_app(settings)`: routers, middleware, the error handler and the lifespan."""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from promptkeeper import __version__, tracing
from promptkeeper.access import routes as access_routes
from promptkeeper.access.authenticator import Authenticator
from promptkeeper.access.throttle import AuthThrottle
from promptkeeper.api import health, metrics
from promptkeeper.api.context import AppContext
from promptkeeper.api.errors import install_error_handlers
from promptkeeper.api.idempotency import IdempotencyMiddleware
from promptkeeper.api.metrics import MetricsMiddleware, RequestMetrics
from promptkeeper.api.middleware import BodyLimitMiddleware, EncodedSlashMiddleware
from promptkeeper.api.nul import reject_nul
from promptkeeper.api.warmup import build_routes
from promptkeeper.audit import routes as audit_routes
from promptkeeper.audit.delivery import Dispatcher
from promptkeeper.bootstrap import bootstrap, forget_local_server, remember_local_server, write_admin_key
from promptkeeper.compat import langfuse as langfuse_routes
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.evaluations import pending_routes
from promptkeeper.evaluations import routes as evaluation_routes
from promptkeeper.evaluations.worker import Worker
from promptkeeper.experiments import routes as experiment_routes
from promptkeeper.experiments import serving
from promptkeeper.experiments.jobs import Scheduler
from promptkeeper.experiments.serving import StickyAssignments
from promptkeeper.mcp_server.http import McpEndpoint
from promptkeeper.monitoring import routes as monitoring_routes
from promptkeeper.otel import receiver as otlp_receiver
from promptkeeper.otel.service import Counters as OtlpCounters
from promptkeeper.prompts import releases
from promptkeeper.prompts import routes as prompt_routes
from promptkeeper.runtime import catalogue as catalogue_routes
from promptkeeper.runtime import routes as runtime_routes
from promptkeeper.runtime.events import ReleaseChanged
from promptkeeper.runtime.runtime import Feeds, Runtime
from promptkeeper.tracing import TracingMiddleware
from promptkeeper.ui import (
    admin_pages,
    draft_pages,
    eval_pages,
    experiment_pages,
    monitoring_pages,
    prompt_pages,
    review_pages,
)
from promptkeeper.workflow import draft_routes, review_routes

log = logging.getLogger("promptkeeper")
UI_STATIC = Path(__file__).parent / "ui" / "static"


def announce_admin_key(settings: Settings, generated: str | None) -> None:
    """Tell the operator how to authenticate: the key generated now, or the one kept in the key file.

    The generated key is stored only as a hash in the database; the key file (mode 0600) is the
    operator's copy, and `serve` reads it back so that `make run` always shows a working key.
    """
    path = settings.admin_key_file
    if generated is not None:
        write_admin_key(path, generated)
    if settings.admin_key is not None or not path.is_file():
        return
    print(
        f"\nAdmin API key (kept in {path}, mode 0600):\n\n    {path.read_text().strip()}\n\n"
        "The CLI in this folder finds this server and key by itself; in another folder or shell:\n\n"
        f"    export PROMPTKEEPER_URL={settings.local_url()}\n"
        f"    export PROMPTKEEPER_API_KEY=$(cat {shlex.quote(str(path.resolve()))})\n",
        file=sys.stderr,
        flush=True,
    )


def build_context(settings: Settings) -> tuple[AppContext, str | None]:
    """Connect, migrate, bootstrap; returns the context and an admin key generated now, if any."""
    db = Database(settings)
    try:
        generated = bootstrap(database=db, settings=settings)
    except BaseException:
        db.dispose()
        raise
    runtime = Runtime(settings, registry_feeds(db))
    db.listeners.append(runtime.on_commit)
    dispatcher = Dispatcher(db, settings)
    db.listeners.append(dispatcher.on_commit)
    worker = Worker(db, settings) if settings.worker_in_process else None
    if worker is not None:
        db.listeners.append(worker.on_commit)
    context = AppContext(
        settings=settings,
        db=db,
        auth=Authenticator(
            db,
            ttl=settings.auth_cache_ttl,
            throttle=AuthThrottle(settings.auth_failure_limit, settings.auth_failure_window),
            stale_ttl=settings.auth_stale_ttl,
        ),
        runtime=runtime,
        dispatcher=dispatcher,
        sticky=StickyAssignments(db),
        worker=worker,
        scheduler=Scheduler(db, settings) if settings.worker_in_process else None,
    )
    return context, generated


def registry_feeds(db: Database) -> Feeds:
    """The registry's reads, handed to the runtime (which must not import the registry)."""

    def changes_since(since: datetime) -> list[ReleaseChanged]:
        with db.session() as session:
            return releases.changes_since(session=session, since=since)

    def current_revisions() -> list[tuple[int, str, str, int]]:
        with db.session() as session:
            return releases.current_revisions(session=session)

    return Feeds(
        load=partial(serving.load_payload, db),
        changes_since=changes_since,
        current_revisions=current_revisions,
    )


def create_app(settings: Settings | None = None, *, announce: bool = False) -> FastAPI:
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context, generated = build_context(settings)
        if announce:
            announce_admin_key(settings, generated)
        elif generated is not None:
            write_admin_key(settings.admin_key_file, generated)
        # Here, not around uvicorn.run: on SIGTERM uvicorn runs this shutdown, then re-raises the
        # signal, so code after uvicorn.run never runs.
        local_server = remember_local_server(settings) if announce else None
        app.state.context = context
        if settings.build_routes_at_start:
            build_routes(app)  # before the first request, not during it
        await context.runtime.start()
        await context.dispatcher.start()
        if context.worker is not None:
            context.worker.start()
        if context.scheduler is not None:
            context.scheduler.start()
        try:
            async with mcp_endpoint.run():
                yield
        finally:
            if context.scheduler is not None:
                await context.scheduler.stop()
            if context.worker is not None:
                await context.worker.stop()
            await context.dispatcher.stop()
            await context.runtime.stop()
            context.db.dispose()
            tracing.shutdown()
            if local_server is not None:
                forget_local_server(local_server)

    app = FastAPI(
        title="PromptKeeper",
        version=__version__,
        summary="Versioned, deployable, tested, monitored prompts.",
        lifespan=lifespan,
        # every route: PostgreSQL stores no NUL character, so it is a 422 naming the field everywhere
        dependencies=[Depends(reject_nul)],
    )
    install_error_handlers(app)
    app.state.metrics = RequestMetrics()
    app.state.otlp = OtlpCounters()
    if tracing.setup(settings.otel_endpoint, settings.otel_service_name):
        app.add_middleware(TracingMiddleware)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # inside EncodedSlashMiddleware, which may hand on a rewritten copy of the scope: the route the
    # router matched is recorded in that copy
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(EncodedSlashMiddleware)
    app.include_router(runtime_routes.router)  # first: routes are matched in order, resolve is the hot path
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(prompt_routes.router)
    app.include_router(catalogue_routes.router)
    app.include_router(draft_routes.router)
    app.include_router(review_routes.router)
    app.include_router(access_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(evaluation_routes.router)
    app.include_router(pending_routes.router)
    app.include_router(experiment_routes.router)
    app.include_router(monitoring_routes.router)
    app.include_router(langfuse_routes.router)
    app.include_router(otlp_receiver.router)
    app.include_router(prompt_pages.router)
    app.include_router(review_pages.router)
    app.include_router(monitoring_pages.router)
    app.include_router(experiment_pages.router)
    app.include_router(eval_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(draft_pages.router)
    app.mount("/ui/static", StaticFiles(directory=str(UI_STATIC)), name="ui-static")
    # an ASGI endpoint, not a mount: MCP clients POST to /mcp itself, and a mount would redirect
    mcp_endpoint = McpEndpoint()
    app.router.routes.append(Route("/mcp", endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"]))
    return app
