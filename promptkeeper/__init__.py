"""PromptKeeper: prompt management for LLM products.

`from promptkeeper import Client` is the SDK; it needs only httpx, pydantic and Jinja2, and importing
this package never imports the server.
"""

__version__ = "0.1.0"
