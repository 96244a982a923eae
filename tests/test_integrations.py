"""Rendered prompts go straight into the real `openai` and `anthropic` SDKs (against the fake
OpenAI/Anthropic server on 127.0.0.1), as docs/integrations.md shows."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from promptkeeper.client import Client
from tests.conftest import ADMIN_KEY, LiveServer
from tests.fake_llm import FakeLLM

CHAT = {
    "type": "chat",
    "messages": [
        {"role": "system", "content": "You help customers of {{ product }}."},
        {"role": "developer", "content": "Answer in {{ language }}."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{ question }}"},
    ],
    "config": {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 200,
        "stop": "\n\n",
        "seed": 7,
        "tools": [],
    },
}
VARIABLES = {
    "product": "Acme",
    "language": "French",
    "question": "Where is my parcel?",
    "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
}


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _prompt(live_server: LiveServer) -> Client:
    with live_server.client() as http:
        http.post("/v1/prompts", json={"name": "support", "content": CHAT}).raise_for_status()
        http.post(
            "/v1/prompts/support/deployments", json={"environment": "production", "version": 1}
        ).raise_for_status()
    return Client(live_server.url, ADMIN_KEY, stream=False)


def test_openai_sdk_takes_the_rendered_messages(live_server: LiveServer, llm: FakeLLM) -> None:
    with _prompt(live_server) as sdk:
        prompt = sdk.get("support")
        client = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-test")
        reply = client.chat.completions.create(
            messages=prompt.openai_messages(**VARIABLES), **prompt.model_params()
        )
    body = llm.bodies[-1]
    assert (
        body["model"] == "gpt-4o-mini"
        and body["temperature"] == 0.2
        and body["stop"] == "\n\n"
        and body["seed"] == 7
    )
    assert "tools" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "developer", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "You help customers of Acme."
    assert reply.choices[0].message.content == "Where is my parcel?"  # the fake echoes the last user message


def test_anthropic_sdk_gets_the_system_prompt_apart(live_server: LiveServer, llm: FakeLLM) -> None:
    with _prompt(live_server) as sdk:
        prompt = sdk.get("support")
        system, messages = prompt.anthropic_messages(**VARIABLES)
        client = anthropic.Anthropic(base_url=llm.anthropic_base_url, api_key="sk-ant-test")
        reply = client.messages.create(system=system, messages=messages, **prompt.model_params("anthropic"))
    body = llm.bodies[-1]
    assert body["system"] == "You help customers of Acme.\n\nAnswer in French."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["stop_sequences"] == ["\n\n"] and "seed" not in body and body["max_tokens"] == 200
    assert body["temperature"] == 0.2
    assert reply.content[0].text == "Where is my parcel?"


def test_a_text_prompt_is_one_user_message(live_server: LiveServer) -> None:
    with live_server.client() as http:
        http.post(
            "/v1/prompts", json={"name": "t", "content": {"type": "text", "template": "Sum up {{ x }}"}}
        ).raise_for_status()
        http.post(
            "/v1/prompts/t/deployments", json={"environment": "production", "version": 1}
        ).raise_for_status()
    with Client(live_server.url, ADMIN_KEY, stream=False) as sdk:
        prompt = sdk.get("t")
        assert prompt.openai_messages(x="this") == [{"role": "user", "content": "Sum up this"}]
        assert prompt.anthropic_messages(x="this") == (None, [{"role": "user", "content": "Sum up this"}])
        assert prompt.model_params() == {}


def test_to_langchain_renders_like_promptkeeper(live_server: LiveServer) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    with live_server.client() as http:
        http.post(
            "/v1/prompts", json={"name": "support", "content": {**CHAT, "config": {}}}
        ).raise_for_status()
        http.post(
            "/v1/prompts/support/deployments", json={"environment": "production", "version": 1}
        ).raise_for_status()
        text = {"type": "text", "template": "Sum up {{ x }}{% if short %} briefly{% endif %}"}
        http.post("/v1/prompts", json={"name": "t", "content": text}).raise_for_status()
        http.post(
            "/v1/prompts/t/deployments", json={"environment": "production", "version": 1}
        ).raise_for_status()
    with Client(live_server.url, ADMIN_KEY, stream=False) as sdk:
        chat = sdk.get("support").to_langchain()
        history = [HumanMessage("Hi"), AIMessage("Hello!")]
        messages = chat.format_messages(**{**VARIABLES, "history": history})
        assert [type(m) for m in messages] == [
            SystemMessage,
            SystemMessage,
            HumanMessage,
            AIMessage,
            HumanMessage,
        ]
        ours = sdk.get("support").openai_messages(**VARIABLES)
        assert [m.content for m in messages] == [m["content"] for m in ours]
        template = sdk.get("t").to_langchain()
        assert (
            template.format(x="this", short=True)
            == sdk.get("t").render(x="this", short=True)
            == "Sum up this briefly"
        )
