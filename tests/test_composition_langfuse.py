"""Langfuse's composition tag through the real `langfuse` client: created, resolved, raw on request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from langfuse import Langfuse

from promptkeeper.compat.langfuse import public_key
from tests.conftest import LiveServer


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


def test_the_langfuse_tag_resolves_and_resolve_false_returns_it_raw(
    live_server: LiveServer, http: httpx.Client
) -> None:
    created = http.post("/v1/keys", json={"name": "langfuse-editor", "role": "editor"})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    langfuse = Langfuse(
        public_key=public_key(secret), secret_key=secret, host=live_server.url, tracing_enabled=False
    )
    langfuse.create_prompt(name="shared/base", prompt="Be brief, {{tone}}.", labels=["production"])
    tag = "@@@langfusePrompt:name=shared/base|label=production@@@"
    langfuse.create_prompt(name="movie-critic", prompt=f"{tag} Rate {{{{movie}}}}.", labels=["production"])
    langfuse.create_prompt(
        name="chat-critic",
        type="chat",
        prompt=[{"role": "system", "content": "@@@langfusePrompt:name=shared/base|version=1@@@"}],
        labels=["production"],
    )

    fetched = langfuse.get_prompt("movie-critic", cache_ttl_seconds=0)
    assert fetched.prompt == "Be brief, {{tone}}. Rate {{movie}}."
    assert fetched.compile(tone="please", movie="Dune") == "Be brief, please. Rate Dune."
    chat = langfuse.get_prompt("chat-critic", type="chat", cache_ttl_seconds=0)
    assert chat.compile(tone="kindly") == [{"role": "system", "content": "Be brief, kindly."}]

    raw = langfuse.api.prompts.get("movie-critic", resolve=False)
    assert raw.prompt == f"{tag} Rate {{{{movie}}}}." and raw.resolution_graph is None
    resolved = langfuse.api.prompts.get("movie-critic")
    assert resolved.resolution_graph == {
        "root": {"name": "movie-critic", "version": 1},
        "dependencies": [{"name": "shared/base", "label": "production", "version": 1}],
    }

    # a new version of the base moved to production reaches the composed prompt
    langfuse.create_prompt(name="shared/base", prompt="Be thorough, {{tone}}.", labels=["production"])
    assert (
        langfuse.get_prompt("movie-critic", cache_ttl_seconds=0).prompt
        == "Be thorough, {{tone}}. Rate {{movie}}."
    )

    with pytest.raises(Exception, match="'missing' does not exist"):
        langfuse.create_prompt(name="broken", prompt="@@@langfusePrompt:name=missing|label=production@@@")
