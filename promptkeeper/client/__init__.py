"""The PromptKeeper Python SDK.

    from promptkeeper import Client
    client = Client("http://127.0.0.1:8700", api_key, fallbacks={"greeting": "Hello {{ name }}"})
    prompt = client.get("greeting")
    prompt.render(name="Ada")

Imports only httpx and pure modules shared with the server (templates, assignment, outcome
fields): never server code.
"""

from promptkeeper.client._async import AsyncClient
from promptkeeper.client._core import PromptUnavailable
from promptkeeper.client._otel import link_spans, otel_span_processor
from promptkeeper.client._prompt import Prompt
from promptkeeper.client._sync import Client

__all__ = ["AsyncClient", "Client", "Prompt", "PromptUnavailable", "link_spans", "otel_span_processor"]
