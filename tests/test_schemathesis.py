"""Schemathesis fuzzes every operation of the app's own `/openapi.json`, on SQLite and PostgreSQL.

What it checks, for every generated request (valid and invalid ones): no 5xx, the status code is
documented, the Content-Type is the documented one, and the body and headers match the documented
response schema. A failure is either a bug (fix the code, add a regression test next to the route's
tests) or an untrue OpenAPI document (fix the route's declaration: the document is generated from
the code, never edited by hand).

The app runs once per backend (a module-scoped fixture), seeded through the API with a few objects
of every kind; a hook swaps generated path parameters for those objects' names and ids half of the
time, so operations on existing objects (deploy, merge, approve, stop, ...) are reached, not only
their 404s.

Budget: CI runs the fuzzing and examples phases, `MAX_EXAMPLES` examples an operation, derandomized
with a fixed seed (the same requests every run). `PROMPTKEEPER_FUZZ_DEEP=1` adds Schemathesis's
coverage phase (boundary and negative values of every parameter, ~7,000 requests a backend) and
more examples: run it locally after changing a route's schema.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from promptkeeper import app as app_module
from promptkeeper.app import create_app
from promptkeeper.audit.delivery import Dispatcher
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from tests.conftest import ADMIN_KEY, BACKENDS, Backend, _truncate_postgres, make_settings
from tests.helpers import add_version, create_prompt, deploy, quote_name, text_content

DEEP = os.environ.get("PROMPTKEEPER_FUZZ_DEEP", "") == "1"
MAX_EXAMPLES = 100 if DEEP else 12
SEED = 20240611

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"coverage": {"enabled": DEEP}},
    }
)

#: Checked on every response. The other built-in checks are left out on purpose: the ones that
#: replay requests with changed credentials (`ignored_auth`) or methods are covered by
#: tests/test_authorization.py's role matrix, and `negative_data_rejection` would demand a 4xx for
#: inputs the schema cannot express as invalid (e.g. extra query parameters, which we ignore).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _openapi() -> dict[str, Any]:
    """The document the app serves at `/openapi.json` (no database needed to serve it)."""
    document: dict[str, Any] = (
        TestClient(create_app(Settings(database_url="sqlite://"))).get("/openapi.json").json()
    )
    return document


# `/v1/stream` is server-sent events that end only when the client goes away: every call would
# wait out the request timeout. tests/test_stream.py covers it. (The UI's HTML pages are not in the
# OpenAPI document: `include_in_schema=False`.)
schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG).exclude(path="/v1/stream")

#: Names and ids of the seeded objects, by path parameter name; filled by `fuzz_app`.
SEEDED: dict[str, list[Any]] = {}


@schema.hook
def flatmap_path_parameters(
    context: Any, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Half of the time, point the path at objects that exist, so the fuzzer gets past the 404s."""
    if not path_parameters:
        return st.just(path_parameters)
    known = {key: SEEDED[key] for key in path_parameters if SEEDED.get(key)}
    if not known:
        return st.just(path_parameters)
    real = st.fixed_dictionaries({key: st.sampled_from(values) for key, values in known.items()})
    return st.one_of(st.just(path_parameters), real.map(lambda values: {**path_parameters, **values}))


def _ok(client: TestClient, method: str, path: str, json: Any = None) -> Any:
    response = client.request(method, path, json=json)
    assert response.status_code < 300, (method, path, response.text)
    return response.json() if response.content else None


def _seed(client: TestClient) -> dict[str, list[Any]]:
    """A few objects of every kind, through the API; returns them by path parameter name."""
    names = ["greeting", "support/reply", "news"]
    for name in names:
        create_prompt(client, name)
        add_version(client, name, "Hi {{ name }}")
        add_version(client, name, "Hey {{ name }}!")
        deploy(client, name, "development", 1)
        deploy(client, name, "development", 2)
        deploy(client, name, "staging", 2)
    path = f"/v1/prompts/{quote_name('greeting')}"
    draft = _ok(client, "POST", f"{path}/drafts", {"title": "wording"})
    _ok(client, "PATCH", f"{path}/drafts/{draft['id']}", {"content": text_content("Hello there {{ name }}")})
    review = _ok(client, "POST", f"{path}/reviews", {"environment": "production", "version": 3})
    suite = "greetings"
    cases = [{"key": "ada", "variables": {"name": "Ada"}, "expected": "Hi Ada"}]
    _ok(client, "POST", "/v1/suites", {"name": suite, "scorers": [{"name": "exact_match"}], "cases": cases})
    run = _ok(client, "POST", f"{path}/evaluations", {"suite": suite})
    _ok(client, "POST", "/v1/environments", {"name": "canary"})
    _ok(client, "PUT", "/v1/environments/canary/gate", {"suite": suite})
    experiment = _ok(
        client,
        "POST",
        "/v1/experiments",
        {
            "prompt": "news",
            "environment": "development",
            "name": "shorter",
            "candidates": [{"version": 1, "weight": 1}],
            "primary_metric": "completion",
            "baseline": 0.5,
            "mde": 0.1,
        },
    )
    monitor = _ok(
        client,
        "POST",
        "/v1/monitors",
        {"prompt": "greeting", "environment": "development", "scorers": [{"scorer": "json_valid"}]},
    )
    # nothing listens on port 9, and `fuzz_app` replaces the webhook transport anyway
    webhook = _ok(client, "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["ping"]})
    _ok(client, "POST", f"/v1/webhooks/{webhook['id']}/ping")
    delivery = _ok(client, "GET", f"/v1/webhooks/{webhook['id']}/deliveries")["items"][0]
    key = _ok(client, "POST", "/v1/keys", {"name": "reader", "role": "viewer"})
    user = _ok(
        client, "POST", "/v1/users", {"email": "ada@example.com", "role": "editor", "password": "x" * 12}
    )
    return {
        "name": names,
        "number": [1, 2, 3],
        "version": [1, 2],
        "draft_id": [draft["id"]],
        "review_id": [review["id"]],
        "suite": [suite],
        "run_id": [run["id"]],
        "environment": ["development", "staging", "canary"],
        "experiment_id": [experiment["id"]],
        "monitor_id": [monitor["id"]],
        "webhook_id": [webhook["id"]],
        "delivery_id": [delivery["id"]],
        "key": [str(key["id"])],
        "user_id": [user["id"]],
    }


def _refuse(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


def _offline_dispatcher(db: Database, settings: Settings) -> Dispatcher:
    """Webhook deliveries go nowhere: the fuzzer creates webhooks with arbitrary URLs."""
    return Dispatcher(db, settings, transport=httpx.MockTransport(_refuse))


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One seeded app per backend for all operations (starting one per operation would dominate).

    The background worker is off (evaluation runs and monitors would call model providers) and
    providers point at a closed local port: nothing the fuzzer creates reaches the network.
    """
    tmp_path = tmp_path_factory.mktemp("fuzz")
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _truncate_postgres(url)
        backend = Backend("postgresql", url)
        extra: dict[str, Any] = {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": f"pkfuzz-{uuid.uuid4().hex[:12]}",
        }
    else:
        target = tmp_path / "promptkeeper.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        backend = Backend("sqlite", f"sqlite:///{target}")
        extra = {}
    settings = make_settings(
        backend,
        tmp_path,
        worker_in_process=False,
        openai_base_url="http://127.0.0.1:9/v1",
        anthropic_base_url="http://127.0.0.1:9",
        **extra,
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(app_module, "Dispatcher", _offline_dispatcher)
    try:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with TestClient(create_app(settings), headers=headers) as client:
            SEEDED.clear()
            SEEDED.update(_seed(client))
        # Schemathesis starts this app's lifespan on its first request and keeps it running.
        app = create_app(settings)
        yield app
    finally:
        schemathesis_asgi.shutdown_lifespans()
        SEEDED.clear()
        patch.undo()


@schema.parametrize()
def test_api(case: schemathesis.Case, fuzz_app: FastAPI) -> None:
    case.call_and_validate(checks=CHECKS, app=fuzz_app)


def test_stateful(fuzz_app: FastAPI) -> None:
    """Sequences of calls chained by links Schemathesis infers from the response schemas (e.g. a
    list's items feed `{name}`, `{draft_id}`, `{review_id}` of later calls): create a draft, then
    merge or delete it; ping a webhook, then redeliver; and the same checks on every response."""
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": fuzz_app}

        def validate_response(
            self, response: Response, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=hypothesis.settings(
            max_examples=40 if DEEP else 12,
            stateful_step_count=8,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
