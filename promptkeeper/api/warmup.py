"""Build FastAPI's routing tables at start-up, not on the first requests (issue 19.8).

FastAPI 0.165 keeps an included router as a branch whose routes (dependants, and a pydantic
adapter for every parameter and response model) are built the first time a request is routed
through it, on the event loop and under a lock. On the 2-core machine that was 0.5 to 1.4 s of CPU
spread over a new server's first requests, during which every other request waited; on a loaded
machine a draft created right after start-up took over httpx's 5 s. The lifespan calls this before
the server accepts connections (`PROMPTKEEPER_BUILD_ROUTES_AT_START`, on by default; the suite's
in-process TestClient turns it off, as nothing there waits on a socket).

FastAPI exposes no public hook for this, so the walk looks for the branch methods by name and does
nothing on a FastAPI without them (tests/test_warm_start.py fails if building moves elsewhere).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI

log = logging.getLogger(__name__)


def build_routes(app: FastAPI) -> int:
    """Build every included router's routes now; returns how many branches were built."""
    started = time.process_time()
    pending: list[Any] = list(app.router.routes)
    built = 0
    while pending:
        route = pending.pop()
        candidates = getattr(route, "effective_candidates", None)
        if not callable(candidates):
            continue
        pending.extend(candidates())
        low_priority = getattr(route, "effective_low_priority_routes", None)
        if callable(low_priority):
            low_priority()
        built += 1
    log.debug("built the routes of %d routers in %.3f s of CPU", built, time.process_time() - started)
    return built
