"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from promptkeeper.api.deps import ContextDep
from promptkeeper.api.error_responses import ErrorBody, error_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody, "description": "A dependency is unreachable."}})
async def readyz(context: ContextDep) -> Any:
    """The database answers (within the configured timeout). Redis is reported but optional: without
    it the instance still serves, from its own cache and the database."""
    checks: dict[str, str] = {}
    redis = context.runtime.redis
    if redis is not None:
        checks["redis"] = "ok" if await redis.ping() else "unavailable (serving without it)"
    try:
        with anyio.fail_after(context.settings.db_timeout + 1):
            await anyio.to_thread.run_sync(context.db.ping, abandon_on_cancel=True)
    except Exception as exc:  # any failure to answer is "not ready"
        checks["database"] = f"error: {type(exc).__name__}"
        return error_response(503, "unavailable", "database unreachable", {"checks": checks})
    checks["database"] = "ok"
    return JSONResponse({"status": "ready", "checks": checks})
