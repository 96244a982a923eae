"""The Langfuse compatibility scenario, run by each supported Python SDK (2.x to 5.x) in its own
virtualenv (`make langfuse-clients`); tests/test_langfuse_matrix.py starts the server and runs it.

Standard library and `langfuse` only: this file runs outside PromptKeeper's environment, so it
imports nothing of ours. Argument: a JSON object `{url, api, secret, prefix}` (`url` the address
the client talks to, a counting proxy; `api` the server itself, for the few setup calls the client
cannot make). Prints one JSON object: `{"version": ..., "rows": {row: "pass" | "skip: why" |
"fail: what"}, "seconds": {row: duration}}`. A row an SDK version cannot run skips with the
reason, never silently.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version as installed
from typing import Any

from langfuse import Langfuse


class Skip(Exception):
    """This SDK version lacks the feature the row needs."""


def _public_key(secret: str) -> str:
    return "_".join(secret.split("_")[:2])


class Scenario:
    def __init__(self, url: str, api: str, secret: str, prefix: str) -> None:
        self.api, self.secret, self.p = api, secret, prefix
        self.major = int(installed("langfuse").split(".")[0])
        options: dict[str, Any] = {"public_key": _public_key(secret), "secret_key": secret, "host": url}
        if self.major >= 3:
            options["tracing_enabled"] = False  # 2.x sends nothing unless a trace is made
        self.lf = Langfuse(**options)

    def _v1(self, method: str, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.api + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    # -- rows ----------------------------------------------------------------------------------------

    def auth_check(self) -> None:
        assert self.lf.auth_check() is True

    def create_and_get(self) -> None:
        name = self.p + "critic"
        first = self.lf.create_prompt(
            name=name,
            prompt="As a {{level}} critic, rate {{movie}}.",
            labels=["staging"],
            tags=["movies"],
            config={"model": "gpt-4o-mini", "temperature": 0.3},
            commit_message="first cut",
        )
        assert (first.version, sorted(first.labels)) == (1, ["latest", "staging"]), (
            first.version,
            first.labels,
        )
        second = self.lf.create_prompt(
            name=name, prompt="Rate {{movie}} like a {{level}}.", labels=["production"]
        )
        assert second.version == 2
        by_name = self.lf.get_prompt(name, cache_ttl_seconds=0)  # default label: production
        assert by_name.version == 2 and by_name.config == {}
        assert self.lf.get_prompt(name, label="staging", cache_ttl_seconds=0).version == 1
        assert self.lf.get_prompt(name, label="latest", cache_ttl_seconds=0).version == 2
        pinned = self.lf.get_prompt(name, version=1, cache_ttl_seconds=0)
        assert pinned.config == {"model": "gpt-4o-mini", "temperature": 0.3}, pinned.config
        assert pinned.commit_message == "first cut"

    def compile_text(self) -> None:
        prompt = self.lf.get_prompt(self.p + "critic", version=1, cache_ttl_seconds=0)
        assert prompt.compile(level="expert", movie="Dune") == "As a expert critic, rate Dune."
        assert sorted(prompt.variables) == ["level", "movie"]

    def chat_placeholders(self) -> None:
        if self.major < 3:
            raise Skip(
                "langfuse 2.x has no chat placeholders (ChatPromptClient.compile takes variables only)"
            )
        name = self.p + "support-chat"
        self.lf.create_prompt(
            name=name,
            type="chat",
            prompt=[
                {"role": "system", "content": "You help with {{product}}."},
                {"type": "placeholder", "name": "history"},
                {"role": "user", "content": "{{question}}"},
            ],
            labels=["production"],
        )
        prompt = self.lf.get_prompt(name, type="chat", cache_ttl_seconds=0)
        messages = prompt.compile(
            product="Acme", question="Where?", history=[{"role": "user", "content": "hi"}]
        )
        assert list(messages) == [
            {"role": "system", "content": "You help with Acme."},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "Where?"},
        ], messages

    def any_chat_role(self) -> None:
        name = self.p + "team/judge"
        self.lf.create_prompt(
            name=name,
            type="chat",
            prompt=[{"role": "critic", "content": "Judge {{x}}"}, {"role": "user", "content": "go"}],
            labels=["production"],
        )
        compiled = self.lf.get_prompt(name, type="chat", cache_ttl_seconds=0).compile(x="it")
        assert compiled[0] == {"role": "critic", "content": "Judge it"}, compiled

    def label_moves(self) -> None:
        name = self.p + "critic"
        self.lf.update_prompt(name=name, version=1, new_labels=["production"])
        assert self.lf.get_prompt(name, cache_ttl_seconds=0).version == 1
        assert self.lf.get_prompt(name, version=2, cache_ttl_seconds=0).labels == ["latest"]

    def caching_and_fallback(self) -> None:
        name = self.p + "cached"
        self.lf.create_prompt(name=name, prompt="one", labels=["production"])
        self.lf.create_prompt(name=name, prompt="two")
        assert self.lf.get_prompt(name, cache_ttl_seconds=60).prompt == "one"
        self._v1("POST", f"/v1/prompts/{name}/deployments", {"environment": "production", "version": 2})
        assert self.lf.get_prompt(name, cache_ttl_seconds=60).prompt == "one"  # from the SDK's cache
        assert self.lf.get_prompt(name, cache_ttl_seconds=0).prompt == "two"
        # langfuse 2.x hands max_retries to backoff as max_tries, where 0 means no limit: it would
        # retry the 404 forever. 1 is its "one attempt".
        attempts = {"max_retries": 1} if self.major < 3 else {"max_retries": 0}
        fallback = self.lf.get_prompt(
            self.p + "missing", fallback="Hello {{name}}", fetch_timeout_seconds=5, **attempts
        )
        assert fallback.is_fallback and fallback.compile(name="Ada") == "Hello Ada"

    def list_from_updated_at(self) -> None:
        tag = self.p + "listed"
        self.lf.create_prompt(name=self.p + "list-old", prompt="1", tags=[tag])
        self.lf.create_prompt(name=self.p + "list-both", prompt="1", tags=[tag])
        middle = datetime.now(timezone.utc)  # noqa: UP017 - 2.x venvs may run older Pythons
        time.sleep(0.05)
        self.lf.create_prompt(name=self.p + "list-both", prompt="2", tags=[tag])
        later = self.lf.api.prompts.list(tag=tag, from_updated_at=middle)
        assert [(p.name, p.versions) for p in later.data] == [(self.p + "list-both", [2])], later.data
        earlier = self.lf.api.prompts.list(tag=tag, to_updated_at=middle)
        assert sorted((p.name, p.versions) for p in earlier.data) == [
            (self.p + "list-both", [1]),
            (self.p + "list-old", [1]),
        ], earlier.data

    def refused_change_sent_once(self) -> None:
        """The proxy counts: tests/test_langfuse_matrix.py checks this POST went out once."""
        name = self.p + "typed"
        self.lf.create_prompt(name=name, prompt="text")
        try:
            self.lf.create_prompt(name=name, type="chat", prompt=[{"role": "user", "content": "x"}])
        except Exception as exc:  # noqa: BLE001 - each major raises its own error class
            assert "text prompt" in str(exc), exc
        else:
            raise AssertionError("a change of type was accepted")

    def upper_case_and_folders(self) -> None:
        for name in (self.p + "movieCritic", self.p + "Support/ReplyDraft"):
            made = self.lf.create_prompt(name=name, prompt="Rate {{movie}}", labels=["production"])
            assert made.name == name
            fetched = self.lf.get_prompt(name, cache_ttl_seconds=0)
            assert (fetched.name, fetched.compile(movie="Up")) == (name, "Rate Up")
        try:
            self.lf.create_prompt(name=self.p + "MovieCritic", prompt="x")
        except Exception as exc:  # noqa: BLE001
            assert f"the prompt '{self.p}movieCritic' exists" in str(exc), exc
        else:
            raise AssertionError("a second spelling of a stored name was accepted")

    def run(self) -> dict[str, Any]:
        rows: dict[str, str] = {}
        steps: list[Callable[[], None]] = [
            self.auth_check,
            self.create_and_get,
            self.compile_text,
            self.chat_placeholders,
            self.any_chat_role,
            self.label_moves,
            self.caching_and_fallback,
            self.list_from_updated_at,
            self.refused_change_sent_once,
            self.upper_case_and_folders,
        ]
        seconds: dict[str, float] = {}
        for step in steps:
            started = time.monotonic()
            try:
                step()
                rows[step.__name__] = "pass"
            except Skip as skip:
                rows[step.__name__] = f"skip: {skip}"
            except Exception:  # noqa: BLE001 - reported, and the other rows still run
                rows[step.__name__] = "fail: " + traceback.format_exc(limit=3)[-1500:]
            seconds[step.__name__] = round(time.monotonic() - started, 3)
        return {"version": installed("langfuse"), "rows": rows, "seconds": seconds}


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    print(json.dumps(Scenario(**arguments).run()), flush=True)
    # Tracing is off, so the SDK's exit handlers have nothing to send, yet they wait for their
    # worker threads (seconds per run); the report is out, so skip them.
    os._exit(0)
