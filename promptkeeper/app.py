"""`create_app(settings)`: routers, middleware, the error handler and the lifespan."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from promptkeeper import __version__
from promptkeeper.access.authenticator import Authenticator
from promptkeeper.api import health
from promptkeeper.api.context import AppContext
from promptkeeper.api.errors import install_error_handlers
from promptkeeper.api.middleware import EncodedSlashMiddleware
from promptkeeper.bootstrap import bootstrap, write_admin_key
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.prompts import routes as prompt_routes
from promptkeeper.prompts.releases import load_payload
from promptkeeper.runtime import routes as runtime_routes
from promptkeeper.runtime.resolver import Resolver

log = logging.getLogger("promptkeeper")


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
    note = "generated now" if generated is not None else "generated on first start"
    print(
        f"\nAdmin API key ({note}, kept in {path}, mode 0600):\n\n    {path.read_text().strip()}\n",
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
    context = AppContext(
        settings=settings,
        db=db,
        auth=Authenticator(db, ttl=settings.auth_cache_ttl),
        resolver=Resolver(db, partial(load_payload, db), ttl=settings.cache_l1_ttl),
    )
    return context, generated


def create_app(settings: Settings | None = None, *, announce: bool = False) -> FastAPI:
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context, generated = build_context(settings)
        if announce:
            announce_admin_key(settings, generated)
        elif generated is not None:
            write_admin_key(settings.admin_key_file, generated)
        app.state.context = context
        try:
            yield
        finally:
            context.db.dispose()

    app = FastAPI(
        title="PromptKeeper",
        version=__version__,
        summary="Versioned, deployable, tested, monitored prompts.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(EncodedSlashMiddleware)
    app.include_router(runtime_routes.router)  # first: routes are matched in order, resolve is the hot path
    app.include_router(health.router)
    app.include_router(prompt_routes.router)
    return app
