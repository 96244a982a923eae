"""Every HTTP route of the app, with the roles it admits and a request that exercises it.

Three tests walk this table (tests/test_authorization.py): the role matrix (every route x every
role), project isolation (project A's admin against project B's objects) and audit completeness
(every mutating route leaves an audit entry). A route missing here fails them, so a new route
cannot ship without its permission and audit being decided.

Each entry's `call(world)` creates, as project admin (or as a separate author key), what the
request needs and returns the request; objects are fresh per call, so calls never depend on each
other's leftovers.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from promptkeeper.access.service import Role, create_api_key, get_project
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from tests.helpers import quote_name, text_content

ALL = frozenset(Role)
READ = frozenset({Role.viewer, Role.editor, Role.approver, Role.admin})
EDIT = frozenset({Role.editor, Role.approver, Role.admin})
APPROVE = frozenset({Role.approver, Role.admin})
ADMIN = frozenset({Role.admin})
PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def new_key(settings: Settings, project: str, role: Role, name: str | None = None) -> str:
    database = Database(settings)
    try:
        with database.write_session() as session:
            project_row = get_project(session=session, name=project)
            secret = create_api_key(
                session=session, project=project_row, name=name or f"{role.value}-key", role=role
            ).secret
            session.commit()
        return secret
    finally:
        database.dispose()


@dataclass
class Request:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None  # replaces the caller's credentials when set
    content: str | None = None  # a raw text body (sent as text/plain) instead of JSON

    def send(self, client: TestClient, headers: dict[str, str]) -> Any:
        if self.content is not None:
            headers = {**headers, "Content-Type": "text/plain"}
        return client.request(
            self.method, self.path, json=self.json, params=self.params, headers=headers, content=self.content
        )


@dataclass
class World:
    """One project's objects, made on demand through the API as its admin."""

    client: TestClient
    admin: dict[str, str]
    author: dict[str, str]  # an editor key: reviews and drafts are not the approvers' own
    tag: str = "a"
    _webhook_receiver: str = "http://127.0.0.1:9/hook"  # nothing listens: deliveries just fail later

    def _ok(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Any:
        response = self.client.request(method, path, json=json, headers=headers or self.admin)
        assert response.status_code in (200, 201, 202), (method, path, response.text)
        return response.json() if response.content else None

    def unique(self, what: str) -> str:
        return f"{self.tag}-{what}-{next(_counter)}"

    def prompt(self, versions: int = 2, deployed: bool = False) -> str:
        name = f"{self.tag}/p{next(_counter)}"
        self._ok("POST", "/v1/prompts", {"name": name, "content": text_content("Hello {{ name }}")})
        for number in range(2, versions + 1):
            self._ok(
                "POST",
                f"/v1/prompts/{quote_name(name)}/versions",
                {"content": text_content(f"Hello {{{{ name }}}} #{number}")},
                self.author,  # written by the author: the admin may approve its review
            )
        if deployed:
            for number in range(1, versions + 1):
                self._ok(
                    "POST",
                    f"/v1/prompts/{quote_name(name)}/deployments",
                    {"environment": "development", "version": number},
                )
        return name

    def draft(self, name: str) -> int:
        body = self._ok("POST", f"/v1/prompts/{quote_name(name)}/drafts", {"title": "d"}, self.author)
        return int(body["id"])

    def edited_draft(self, name: str) -> int:
        draft = self.draft(name)
        self._ok(
            "PATCH",
            f"/v1/prompts/{quote_name(name)}/drafts/{draft}",
            {"content": text_content("Edited {{ name }}")},
            self.author,
        )
        return draft

    def review(self, name: str, environment: str = "staging", version: int = 2) -> int:
        body = self._ok(
            "POST",
            f"/v1/prompts/{quote_name(name)}/reviews",
            {"environment": environment, "version": version},
            self.author,
        )
        return int(body["id"])

    def approved_review(self, name: str) -> int:
        review = self.review(name)
        self._ok("POST", f"/v1/prompts/{quote_name(name)}/reviews/{review}/approve", {})
        return review

    def webhook(self) -> int:
        body = self._ok("POST", "/v1/webhooks", {"url": self._webhook_receiver, "events": ["ping"]})
        return int(body["id"])

    def delivery(self, webhook: int) -> int:
        self._ok("POST", f"/v1/webhooks/{webhook}/ping")
        body = self._ok("GET", f"/v1/webhooks/{webhook}/deliveries")
        return int(body["items"][0]["id"])

    def key(self) -> str:
        body = self._ok("POST", "/v1/keys", {"name": self.unique("key"), "role": "viewer"})
        return str(body["prefix"])

    def member(self, role: str = "viewer") -> tuple[int, str]:
        email = f"{self.unique('user')}@example.com"
        body = self._ok("POST", "/v1/users", {"email": email, "role": role, "password": PASSWORD})
        return int(body["id"]), email

    def session(self) -> dict[str, str]:
        _, email = self.member()
        body = self._ok("POST", "/v1/auth/login", {"email": email, "password": PASSWORD}, headers={})
        return {"Authorization": f"Bearer {body['token']}"}

    def environment(self) -> str:
        name = self.unique("env")
        self._ok("POST", "/v1/environments", {"name": name})
        return name

    def suite(self) -> str:
        name = self.unique("suite")
        cases = [{"key": "one", "variables": {"name": "Ada"}, "expected": "Hello Ada"}]
        self._ok("POST", "/v1/suites", {"name": name, "scorers": [{"name": "exact_match"}], "cases": cases})
        return name

    def run(self) -> int:
        name = self.prompt()
        body = self._ok("POST", f"{_p(name)}/evaluations", {"suite": self.suite()})
        return int(body["id"])

    def experiment(self, status: str = "draft") -> int:
        """An experiment on development: control version 2 (live), candidate version 1."""
        name = self.prompt(deployed=True)
        body = self._ok(
            "POST",
            "/v1/experiments",
            {
                "prompt": name,
                "environment": "development",
                "name": "e",
                "candidates": [{"version": 1, "weight": 1}],
                "primary_metric": "completion",
                "baseline": 0.5,
                "mde": 0.1,
            },
        )
        if status == "running":
            self._ok("POST", f"/v1/experiments/{body['id']}/start", {})
        return int(body["id"])

    def monitor(self) -> int:
        name = self.prompt(deployed=True)
        body = self._ok(
            "POST",
            "/v1/monitors",
            {"prompt": name, "environment": "development", "scorers": [{"scorer": "json_valid"}]},
        )
        return int(body["id"])

    def pending_deploy(self) -> tuple[str, int]:
        """A deploy waiting for its evaluation: the gate's run takes a minute a case."""
        environment = self.environment()
        gate = {"suite": self.suite(), "auto_run": {"params": {"local_latency_ms": 60_000}}}
        self._ok("PUT", f"/v1/environments/{environment}/gate", gate)
        name = self.prompt()
        body = self._ok("POST", f"{_p(name)}/deployments", {"environment": environment, "version": 1})
        return name, int(body["id"])

    def gated_environment(self) -> str:
        environment = self.environment()
        self._ok("PUT", f"/v1/environments/{environment}/gate", {"suite": self.suite()})
        return environment


def _p(name: str) -> str:
    return f"/v1/prompts/{quote_name(name)}"


@dataclass
class Route:
    method: str
    path: str
    roles: frozenset[Role] | None  # None: no credentials needed
    call: Callable[[World], Request]
    #: Called with project B's objects and project A's key: 404 expected (object in the path or body).
    scoped: bool = True
    #: Changes something: must leave an audit entry.
    mutating: bool = False
    #: A 403 an admitted role may still get from a rule of the service (the message it contains).
    service_rule: str | None = None
    notes: list[str] = field(default_factory=list)


def _draft_call(suffix: str, method: str, json: Any = None) -> Callable[[World], Request]:
    def call(w: World) -> Request:
        name = w.prompt()
        draft = w.edited_draft(name) if suffix == "/merge" else w.draft(name)
        return Request(method, f"{_p(name)}/drafts/{draft}{suffix}", json)

    return call


def _review_call(suffix: str, json: Any = None, approved: bool = False) -> Callable[[World], Request]:
    def call(w: World) -> Request:
        name = w.prompt()
        review = w.approved_review(name) if approved else w.review(name)
        return Request("POST" if suffix else "GET", f"{_p(name)}/reviews/{review}{suffix}", json)

    return call


def _pending(w: World) -> tuple[str, int]:
    name, pending_id = w.pending_deploy()
    return _p(name), pending_id


def _p_call(method: str, suffix: str, json: Any = None, **kw: Any) -> Callable[[World], Request]:
    def call(w: World) -> Request:
        name = w.prompt(deployed=kw.get("deployed", False))
        body = json(w) if callable(json) else json
        return Request(method, f"{_p(name)}{suffix}", body, kw.get("params"))

    return call


def _webhook_call(method: str, suffix: str = "", json: Any = None) -> Callable[[World], Request]:
    def call(w: World) -> Request:
        hook = w.webhook()
        if "{delivery}" in suffix:
            suffix_ = suffix.replace("{delivery}", str(w.delivery(hook)))
        else:
            suffix_ = suffix
        return Request(method, f"/v1/webhooks/{hook}{suffix_}", json)

    return call


def _member_call(method: str, json: Any = None) -> Callable[[World], Request]:
    def call(w: World) -> Request:
        user_id, _ = w.member()
        return Request(method, f"/v1/users/{user_id}", json)

    return call


def _login(w: World) -> Request:
    _, email = w.member()
    return Request("POST", "/v1/auth/login", {"email": email, "password": PASSWORD}, headers={})


def _new_prompt(w: World) -> Request:
    return Request("POST", "/v1/prompts", {"name": w.unique("new"), "content": text_content("x")})


ROUTES: list[Route] = [
    Route("GET", "/healthz", None, lambda w: Request("GET", "/healthz"), scoped=False),
    Route("GET", "/readyz", None, lambda w: Request("GET", "/readyz"), scoped=False),
    Route("GET", "/metrics", None, lambda w: Request("GET", "/metrics"), scoped=False),
    # runtime
    Route(
        "GET",
        "/v1/resolve/{name}",
        ALL,
        lambda w: Request(
            "GET", f"/v1/resolve/{quote_name(w.prompt(deployed=True))}", params={"environment": "development"}
        ),
    ),
    Route(
        "POST",
        "/v1/render",
        ALL,
        lambda w: Request(
            "POST", "/v1/render", {"name": w.prompt(), "version": 1, "variables": {"name": "Ada"}}
        ),
    ),
    Route("GET", "/v1/catalogue", ALL, lambda w: Request("GET", "/v1/catalogue"), scoped=False),
    Route("GET", "/v1/runtime/status", READ, lambda w: Request("GET", "/v1/runtime/status"), scoped=False),
    Route(
        "GET",
        "/v1/stream",
        ALL,
        lambda w: Request("GET", "/v1/stream"),
        scoped=False,
        notes=["an endless event stream: admitted roles are checked in tests/test_stream.py"],
    ),
    # registry
    Route("POST", "/v1/prompts", EDIT, _new_prompt, scoped=False, mutating=True),
    Route("GET", "/v1/prompts", READ, lambda w: Request("GET", "/v1/prompts"), scoped=False),
    Route("GET", "/v1/prompts/{name}", READ, _p_call("GET", "")),
    Route("PATCH", "/v1/prompts/{name}", EDIT, _p_call("PATCH", "", {"description": "new"}), mutating=True),
    Route(
        "POST",
        "/v1/prompts/{name}/versions",
        EDIT,
        _p_call("POST", "/versions", {"content": text_content("v3 {{ name }}")}),
        mutating=True,
    ),
    Route("GET", "/v1/prompts/{name}/versions", READ, _p_call("GET", "/versions")),
    Route("GET", "/v1/prompts/{name}/versions/{number}", READ, _p_call("GET", "/versions/1")),
    Route("GET", "/v1/prompts/{name}/diff", READ, _p_call("GET", "/diff", params={"from": 1, "to": 2})),
    Route(
        "GET", "/v1/prompts/{name}/versions/{number}/includes", READ, _p_call("GET", "/versions/1/includes")
    ),
    Route("GET", "/v1/prompts/{name}/dependants", READ, _p_call("GET", "/dependants")),
    Route(
        "POST",
        "/v1/prompts/{name}/deployments",
        EDIT,
        _p_call("POST", "/deployments", {"environment": "staging", "version": 2}),
        mutating=True,
    ),
    Route("GET", "/v1/prompts/{name}/deployments", READ, _p_call("GET", "/deployments")),
    Route(
        "POST",
        "/v1/prompts/{name}/rollback",
        EDIT,
        _p_call("POST", "/rollback", {"environment": "development"}, deployed=True),
        mutating=True,
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/promote",
        EDIT,
        _p_call("POST", "/promote", {"from": "development", "to": "staging"}, deployed=True),
        mutating=True,
    ),
    Route(
        "GET",
        "/v1/prompts/{name}/pending-deployments",
        READ,
        lambda w: Request("GET", f"{_p(w.pending_deploy()[0])}/pending-deployments"),
    ),
    Route(
        "GET",
        "/v1/prompts/{name}/pending-deployments/{pending_id}",
        READ,
        lambda w: Request("GET", "{}/pending-deployments/{}".format(*_pending(w))),
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/pending-deployments/{pending_id}/cancel",
        EDIT,
        lambda w: Request("POST", "{}/pending-deployments/{}/cancel".format(*_pending(w))),
        mutating=True,
    ),
    Route("GET", "/v1/environments", READ, lambda w: Request("GET", "/v1/environments"), scoped=False),
    Route(
        "POST",
        "/v1/environments",
        ADMIN,
        lambda w: Request("POST", "/v1/environments", {"name": w.unique("env")}),
        scoped=False,
        mutating=True,
    ),
    Route(
        "PATCH",
        "/v1/environments/{environment}",
        ADMIN,
        lambda w: Request("PATCH", f"/v1/environments/{w.environment()}", {"description": "changed"}),
        mutating=True,
    ),
    # drafts
    Route(
        "POST", "/v1/prompts/{name}/drafts", EDIT, _p_call("POST", "/drafts", {"title": "t"}), mutating=True
    ),
    Route("GET", "/v1/prompts/{name}/drafts", READ, _p_call("GET", "/drafts")),
    Route("GET", "/v1/prompts/{name}/drafts/{draft_id}", READ, _draft_call("", "GET")),
    Route(
        "PATCH",
        "/v1/prompts/{name}/drafts/{draft_id}",
        EDIT,
        _draft_call("", "PATCH", {"title": "renamed"}),
        mutating=True,
    ),
    Route("DELETE", "/v1/prompts/{name}/drafts/{draft_id}", EDIT, _draft_call("", "DELETE"), mutating=True),
    Route(
        "POST",
        "/v1/prompts/{name}/drafts/{draft_id}/merge",
        EDIT,
        _draft_call("/merge", "POST", {"message": "merge"}),
        mutating=True,
    ),
    # reviews
    Route(
        "POST",
        "/v1/prompts/{name}/reviews",
        EDIT,
        _p_call("POST", "/reviews", {"environment": "staging", "version": 2}),
        mutating=True,
    ),
    Route("GET", "/v1/prompts/{name}/reviews", READ, _p_call("GET", "/reviews")),
    Route("GET", "/v1/reviews", READ, lambda w: Request("GET", "/v1/reviews"), scoped=False),
    Route("GET", "/v1/prompts/{name}/reviews/{review_id}", READ, _review_call("")),
    Route(
        "POST",
        "/v1/prompts/{name}/reviews/{review_id}/comments",
        EDIT,
        _review_call("/comments", {"body": "looks good"}),
        mutating=True,
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/reviews/{review_id}/approve",
        APPROVE,
        _review_call("/approve", {}),
        mutating=True,
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/reviews/{review_id}/request-changes",
        APPROVE,
        _review_call("/request-changes", {"comment": "shorter please"}),
        mutating=True,
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/reviews/{review_id}/withdraw",
        EDIT,
        _review_call("/withdraw"),
        mutating=True,
        service_rule="only the author of a review or an admin can withdraw it",
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/reviews/{review_id}/deploy",
        APPROVE,
        _review_call("/deploy", {}, approved=True),
        mutating=True,
    ),
    # access
    Route("POST", "/v1/auth/login", None, _login, scoped=False, mutating=True),
    Route(
        "POST",
        "/v1/auth/logout",
        ALL,
        lambda w: Request("POST", "/v1/auth/logout", headers=w.session()),
        scoped=False,
        mutating=True,
        notes=["with a role's API key instead of a session: 422"],
    ),
    Route("GET", "/v1/auth/me", ALL, lambda w: Request("GET", "/v1/auth/me"), scoped=False),
    Route(
        "POST",
        "/v1/auth/password",
        ALL,
        lambda w: Request(
            "POST",
            "/v1/auth/password",
            {"current_password": PASSWORD, "new_password": PASSWORD + "!"},
            headers=w.session(),
        ),
        scoped=False,
        mutating=True,
    ),
    Route("GET", "/v1/keys", ADMIN, lambda w: Request("GET", "/v1/keys"), scoped=False),
    Route(
        "POST",
        "/v1/keys",
        ADMIN,
        lambda w: Request("POST", "/v1/keys", {"name": w.unique("k"), "role": "runtime"}),
        scoped=False,
        mutating=True,
    ),
    Route(
        "DELETE", "/v1/keys/{key}", ADMIN, lambda w: Request("DELETE", f"/v1/keys/{w.key()}"), mutating=True
    ),
    Route("GET", "/v1/users", ADMIN, lambda w: Request("GET", "/v1/users"), scoped=False),
    Route(
        "POST",
        "/v1/users",
        ADMIN,
        lambda w: Request(
            "POST",
            "/v1/users",
            {"email": f"{w.unique('u')}@example.com", "role": "editor", "password": PASSWORD},
        ),
        scoped=False,
        mutating=True,
    ),
    Route("PATCH", "/v1/users/{user_id}", ADMIN, _member_call("PATCH", {"role": "editor"}), mutating=True),
    Route("DELETE", "/v1/users/{user_id}", ADMIN, _member_call("DELETE"), mutating=True),
    # evaluations
    Route(
        "POST",
        "/v1/suites",
        EDIT,
        lambda w: Request(
            "POST", "/v1/suites", {"name": w.unique("s"), "scorers": [{"name": "exact_match"}]}
        ),
        scoped=False,
        mutating=True,
    ),
    Route("GET", "/v1/suites", READ, lambda w: Request("GET", "/v1/suites"), scoped=False),
    Route("GET", "/v1/suites/{suite}", READ, lambda w: Request("GET", f"/v1/suites/{w.suite()}")),
    Route(
        "POST",
        "/v1/suites/{suite}/versions",
        EDIT,
        lambda w: Request("POST", f"/v1/suites/{w.suite()}/versions", {"scorers": [{"name": "contains"}]}),
        mutating=True,
    ),
    Route("GET", "/v1/suites/{suite}/cases", READ, lambda w: Request("GET", f"/v1/suites/{w.suite()}/cases")),
    Route(
        "POST",
        "/v1/suites/{suite}/import",
        EDIT,
        lambda w: Request(
            "POST", f"/v1/suites/{w.suite()}/import", content='{"key": "k", "expected": "x"}\n'
        ),
        mutating=True,
    ),
    Route(
        "GET", "/v1/suites/{suite}/export", READ, lambda w: Request("GET", f"/v1/suites/{w.suite()}/export")
    ),
    Route(
        "POST",
        "/v1/prompts/{name}/evaluations",
        EDIT,
        lambda w: Request("POST", f"{_p(w.prompt())}/evaluations", {"suite": w.suite()}),
        mutating=True,
    ),
    Route("GET", "/v1/prompts/{name}/evaluations", READ, _p_call("GET", "/evaluations")),
    Route("GET", "/v1/evaluations/{run_id}", READ, lambda w: Request("GET", f"/v1/evaluations/{w.run()}")),
    Route(
        "GET",
        "/v1/evaluations/{run_id}/results",
        READ,
        lambda w: Request("GET", f"/v1/evaluations/{w.run()}/results"),
    ),
    Route(
        "GET",
        "/v1/evaluations/{run_id}/compare",
        READ,
        lambda w: Request("GET", f"/v1/evaluations/{w.run()}/compare", params={"baseline": w.run()}),
        notes=["two runs of different suites: 422 for admitted roles, 404 across projects"],
    ),
    Route(
        "GET",
        "/v1/environments/{environment}/gate",
        READ,
        lambda w: Request("GET", f"/v1/environments/{w.gated_environment()}/gate"),
    ),
    Route(
        "PUT",
        "/v1/environments/{environment}/gate",
        ADMIN,
        lambda w: Request("PUT", f"/v1/environments/{w.environment()}/gate", {"suite": w.suite()}),
        mutating=True,
    ),
    Route(
        "DELETE",
        "/v1/environments/{environment}/gate",
        ADMIN,
        lambda w: Request("DELETE", f"/v1/environments/{w.gated_environment()}/gate"),
        mutating=True,
    ),
    # experiments
    Route(
        "POST",
        "/v1/experiments",
        EDIT,
        lambda w: Request(
            "POST",
            "/v1/experiments",
            {
                "prompt": w.prompt(deployed=True),
                "environment": "development",
                "name": "e",
                "candidates": [{"version": 1, "weight": 1}],
                "primary_metric": "completion",
                "baseline": 0.5,
                "mde": 0.1,
            },
        ),
        mutating=True,
    ),
    Route("GET", "/v1/experiments", READ, lambda w: Request("GET", "/v1/experiments"), scoped=False),
    Route(
        "GET",
        "/v1/experiments/{experiment_id}",
        READ,
        lambda w: Request("GET", f"/v1/experiments/{w.experiment()}"),
    ),
    Route(
        "POST",
        "/v1/experiments/{experiment_id}/start",
        EDIT,
        lambda w: Request("POST", f"/v1/experiments/{w.experiment()}/start", {}),
        mutating=True,
    ),
    Route(
        "PUT",
        "/v1/experiments/{experiment_id}/weights",
        EDIT,
        lambda w: Request(
            "PUT",
            f"/v1/experiments/{w.experiment('running')}/weights",
            {"weights": {"control": 3, "v1": 1}},
        ),
        mutating=True,
    ),
    Route(
        "POST",
        "/v1/experiments/{experiment_id}/stop",
        EDIT,
        lambda w: Request(
            "POST", f"/v1/experiments/{w.experiment('running')}/stop", {"decision": "keep_control"}
        ),
        mutating=True,
    ),
    Route(
        "GET",
        "/v1/experiments/{experiment_id}/results",
        READ,
        lambda w: Request("GET", f"/v1/experiments/{w.experiment('running')}/results"),
    ),
    Route(
        "POST",
        "/v1/events",
        ALL,
        lambda w: Request(
            "POST",
            "/v1/events",
            {
                "events": [
                    {
                        "type": "exposure",
                        "request_id": w.unique("req"),
                        "experiment_id": w.experiment("running"),
                        "variant": "v1",
                        "unit": "u1",
                    }
                ]
            },
        ),
        notes=["telemetry, not a change: not audited (see UNAUDITED_POSTS)"],
    ),
    Route(
        "POST",
        "/otlp/v1/traces",
        ALL,
        lambda w: Request("POST", "/otlp/v1/traces", {"resourceSpans": []}),
        scoped=False,
        notes=[
            "OTLP/HTTP traces: any role, like /v1/events (applications hold runtime keys); errors are "
            "google.rpc.Status bodies, so a refusal is checked by status code only; telemetry, not audited"
        ],
    ),
    Route("GET", "/v1/metrics", READ, lambda w: Request("GET", "/v1/metrics"), scoped=False),
    Route(
        "POST",
        "/v1/metrics",
        EDIT,
        lambda w: Request("POST", "/v1/metrics", {"name": w.unique("m").replace("-", "_"), "kind": "binary"}),
        scoped=False,
        mutating=True,
    ),
    # monitoring
    Route(
        "POST",
        "/v1/monitors",
        EDIT,
        lambda w: Request(
            "POST",
            "/v1/monitors",
            {"prompt": w.prompt(), "environment": "development", "scorers": [{"scorer": "json_valid"}]},
        ),
        mutating=True,
    ),
    Route("GET", "/v1/monitors", READ, lambda w: Request("GET", "/v1/monitors"), scoped=False),
    Route("GET", "/v1/monitors/{monitor_id}", READ, lambda w: Request("GET", f"/v1/monitors/{w.monitor()}")),
    Route(
        "PATCH",
        "/v1/monitors/{monitor_id}",
        EDIT,
        lambda w: Request("PATCH", f"/v1/monitors/{w.monitor()}", {"sample_rate": 0.5}),
        mutating=True,
    ),
    Route(
        "DELETE",
        "/v1/monitors/{monitor_id}",
        EDIT,
        lambda w: Request("DELETE", f"/v1/monitors/{w.monitor()}"),
        mutating=True,
    ),
    Route(
        "GET",
        "/v1/monitors/{monitor_id}/status",
        READ,
        lambda w: Request("GET", f"/v1/monitors/{w.monitor()}/status"),
    ),
    Route(
        "GET",
        "/v1/monitors/{monitor_id}/alerts",
        READ,
        lambda w: Request("GET", f"/v1/monitors/{w.monitor()}/alerts"),
    ),
    Route(
        "GET",
        "/v1/monitors/{monitor_id}/examples",
        READ,
        lambda w: Request("GET", f"/v1/monitors/{w.monitor()}/examples"),
    ),
    # Langfuse-compatible prompt API
    Route(
        "GET",
        "/api/public/v2/prompts/{name}",
        ALL,
        lambda w: Request("GET", f"/api/public/v2/prompts/{quote_name(w.prompt())}", params={"version": 1}),
    ),
    Route(
        "GET",
        "/api/public/v2/prompts",
        READ,
        lambda w: Request("GET", "/api/public/v2/prompts"),
        scoped=False,
    ),
    Route(
        "POST",
        "/api/public/v2/prompts",
        EDIT,
        lambda w: Request(
            "POST", "/api/public/v2/prompts", {"name": w.unique("lf"), "prompt": "Hi {{ name }}"}
        ),
        scoped=False,
        mutating=True,
    ),
    Route(
        "PATCH",
        "/api/public/v2/prompts/{name}/versions/{version}",
        EDIT,
        lambda w: Request(
            "PATCH",
            f"/api/public/v2/prompts/{quote_name(w.prompt())}/versions/2",
            {"newLabels": ["development"]},
        ),
        mutating=True,
    ),
    Route(
        "DELETE",
        "/api/public/v2/prompts/{name}",
        EDIT,
        lambda w: Request("DELETE", f"/api/public/v2/prompts/{quote_name(w.prompt())}"),
        service_rule="keeps every version",
        notes=["always refused (403, which Langfuse's clients do not retry): versions are never deleted"],
    ),
    Route(
        "GET",
        "/api/public/projects",
        ALL,
        lambda w: Request("GET", "/api/public/projects"),
        scoped=False,
        notes=["the key's own project: what langfuse.auth_check() asks for"],
    ),
    # audit and webhooks
    Route("GET", "/v1/audit", READ, lambda w: Request("GET", "/v1/audit"), scoped=False),
    Route("GET", "/v1/webhooks", ADMIN, lambda w: Request("GET", "/v1/webhooks"), scoped=False),
    Route(
        "POST",
        "/v1/webhooks",
        ADMIN,
        lambda w: Request("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["*"]}),
        scoped=False,
        mutating=True,
    ),
    Route("GET", "/v1/webhooks/{webhook_id}", ADMIN, _webhook_call("GET")),
    Route(
        "PATCH",
        "/v1/webhooks/{webhook_id}",
        ADMIN,
        _webhook_call("PATCH", "", {"active": False}),
        mutating=True,
    ),
    Route("DELETE", "/v1/webhooks/{webhook_id}", ADMIN, _webhook_call("DELETE"), mutating=True),
    Route("GET", "/v1/webhooks/{webhook_id}/deliveries", ADMIN, _webhook_call("GET", "/deliveries")),
    Route("POST", "/v1/webhooks/{webhook_id}/ping", ADMIN, _webhook_call("POST", "/ping"), mutating=True),
    Route(
        "POST",
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        ADMIN,
        _webhook_call("POST", "/deliveries/{delivery}/redeliver"),
        mutating=True,
    ),
]

#: POST routes that change nothing (they compute an answer).
READ_ONLY_POSTS = {("POST", "/v1/render")}
#: POST routes that record telemetry rather than change anything: an audit entry per batch of
#: events would drown the log (ingestion is counted in the events table itself).
#: Routes that exist for compatibility and always refuse (with 409), so they change nothing.
REFUSED = {("DELETE", "/api/public/v2/prompts/{name}")}
UNAUDITED_POSTS = READ_ONLY_POSTS | REFUSED | {("POST", "/v1/events"), ("POST", "/otlp/v1/traces")}


def unique_project() -> str:
    return f"b-{uuid.uuid4().hex[:10]}"
