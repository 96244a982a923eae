"""Build each included route's serving state once per process, not once per app.

FastAPI 0.165 builds, for every route of an included router, an effective route context: the
dependant, a pydantic adapter for every parameter, body and response model. That is 0.2 to 0.6 s
of CPU per app (141 routes), nearly all of it pydantic schema generation, and the same result for
every app in a process: the routers are module-level, and the only per-app input is
`dependency_overrides_provider` (the app, read for `app.dependency_overrides` at request time).
A server process builds one app and gains nothing; the test suite builds one app per test, and
spent about a quarter of its CPU here.

So the first build of a route in a given include context (path prefix, tags, dependencies,
responses, ...: everything but the app) is kept, built with no overrides provider so that it holds
no app alive, and each app gets a shallow copy bound to its own provider with its own request
handler (`get_route_handler`: a closure, microseconds). The copies share the dependant and the
model fields, which FastAPI only reads after building. A different include context (another prefix,
another dependency such as one with its own `max_concurrency`) does not compare equal and is
built anew.

FastAPI exposes no hook for this; `install()` replaces `_EffectiveRouteContext.from_api_route` and
does nothing on a FastAPI without the private names it needs, which then builds every route per app
as before (tests/test_route_cache.py fails if the cache stops hitting).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from typing import Any

from fastapi import routing
from fastapi._body_limit import wrap_app_with_body_limit

_REQUIRED = ("_EffectiveRouteContext", "_effective_route_context_var", "request_response")

_lock = threading.Lock()
# id(route) -> [(route, include context without its provider, the context built for it)]; the route
# is kept so that an id reused by a route created later never matches (routers are module-level)
_built: dict[int, list[tuple[Any, Any, Any]]] = {}
_installed = False


def install() -> bool:
    """Route contexts are built once per process from now on; False if this FastAPI lacks the seam."""
    global _installed
    with _lock:
        if _installed:
            return True
        if not all(hasattr(routing, name) for name in _REQUIRED):
            return False
        context_class: Any = routing._EffectiveRouteContext
        build = context_class.from_api_route.__func__

        def from_api_route(cls: Any, *, original_route: Any, include_context: Any) -> Any:
            template = _template(cls, build, original_route, include_context)
            return _bind(template, original_route, include_context.dependency_overrides_provider)

        context_class.from_api_route = classmethod(from_api_route)
        _installed = True
        return True


def _template(cls: Any, build: Any, route: Any, include_context: Any) -> Any:
    key = dataclasses.replace(include_context, dependency_overrides_provider=None)
    with _lock:
        for known_route, known_key, template in _built.get(id(route), ()):
            if known_route is route and known_key == key:
                return template
    template = build(cls, original_route=route, include_context=key)  # outside the lock: slow
    with _lock:
        _built.setdefault(id(route), []).append((route, key, template))
    return template


def _bind(template: Any, route: Any, provider: Any) -> Any:
    """A copy of `template` serving one app: its overrides provider, its own request handler
    (built as FastAPI builds it, with the context in the context variable get_route_handler reads)."""
    context = copy.copy(template)
    context.dependency_overrides_provider = provider
    token = routing._effective_route_context_var.set(context)
    try:
        context.app = wrap_app_with_body_limit(
            routing.request_response(route.get_route_handler()), context.max_body_size
        )
    finally:
        routing._effective_route_context_var.reset(token)
    return context


def cached_routes() -> int:
    """How many route contexts the process keeps (for tests)."""
    with _lock:
        return sum(len(entries) for entries in _built.values())
