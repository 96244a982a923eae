"""`create_app(settings)`: routers, middleware, the error handler and the lifespan."""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from promptkeeper import __version__, tracing
from promptkeeper.access.authenticator import Authenticator
from promptkeeper.access.throttle import AuthThrottle
from promptkeeper.api import health, route_cache
from promptkeeper.api import prometheus as metrics
from promptkeeper.api.context import AppContext
from promptkeeper.api.error_responses import install_error_handlers
from promptkeeper.api.idempotency_middleware import IdempotencyMiddleware
from promptkeeper.api.middleware import BodyLimitMiddleware, EncodedSlashMiddleware
from promptkeeper.api.nul import reject_nul
from promptkeeper.api.prometheus import MetricsMiddleware, RequestMetrics
from promptkeeper.api.routes import access as access_routes
from promptkeeper.api.routes import audit as audit_routes
from promptkeeper.api.routes import catalogue as catalogue_routes
from promptkeeper.api.routes import composition as composition_routes
from promptkeeper.api.routes import deployments as deployment_routes
from promptkeeper.api.routes import drafts as draft_routes
from promptkeeper.api.routes import environments as environment_routes
from promptkeeper.api.routes import evaluations as evaluation_routes
from promptkeeper.api.routes import experiments as experiment_routes
from promptkeeper.api.routes import monitoring as monitoring_routes
from promptkeeper.api.routes import otlp as otlp_receiver
from promptkeeper.api.routes import pending as pending_routes
from promptkeeper.api.routes import prompts as prompt_routes
from promptkeeper.api.routes import reviews as review_routes
from promptkeeper.api.routes import runtime as runtime_routes
from promptkeeper.api.warmup import build_routes
from promptkeeper.audit.delivery import Dispatcher
from promptkeeper.bootstrap import bootstrap, forget_local_server, remember_local_server, write_admin_key
from promptkeeper.compat import langfuse as langfuse_routes
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.deployments import releases
from promptkeeper.experiments import serving
from promptkeeper.experiments.serving import StickyAssignments
from promptkeeper.mcp_server.http import McpEndpoint
from promptkeeper.otel.service import Counters as OtlpCounters
from promptkeeper.runtime.release_changes import ReleaseChanged
from promptkeeper.runtime.runtime import Feeds, Runtime
from promptkeeper.tracing import TracingMiddleware
from promptkeeper.ui import (
    admin_pages,
    draft_pages,
    eval_pages,
    experiment_pages,
    login,
    monitoring_pages,
    prompt_pages,
    review_pages,
)
from promptkeeper.ui.web import LoginRequired, sign_in_first
from promptkeeper.worker import Jobs

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


@dataclass
class Background:
    """What the lifespan starts and stops besides the runtime: webhook deliveries and, in
    embedded mode, the jobs (`promptkeeper.worker`)."""

    dispatcher: Dispatcher
    jobs: Jobs | None


def build_context(settings: Settings) -> tuple[AppContext, Background, str | None]:
    """Connect, migrate, bootstrap; returns the context, its background work and an admin key
    generated now, if any."""
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
    jobs = Jobs(db, settings) if settings.worker_in_process else None
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
        sticky=StickyAssignments(db),
        worker=jobs.loop if jobs is not None else None,
    )
    return context, Background(dispatcher=dispatcher, jobs=jobs), generated


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
    route_cache.install()  # a second app in this process reuses the first one's route building

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context, background, generated = build_context(settings)
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
        await background.dispatcher.start()
        if background.jobs is not None:
            background.jobs.start()
        try:
            async with mcp_endpoint.run():
                yield
        finally:
            if background.jobs is not None:
                await background.jobs.stop()
            await background.dispatcher.stop()
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
    app.add_exception_handler(LoginRequired, sign_in_first)  # a UI page's `SignedIn` without a session
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
    app.include_router(deployment_routes.router)
    app.include_router(environment_routes.router)
    app.include_router(composition_routes.router)
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
    app.include_router(login.router)
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
