"""Model providers for evaluation runs and the executor that calls them.

Built in: `local` (deterministic, no network), `openai` (any OpenAI-compatible Chat Completions
endpoint) and `anthropic` (Messages API). `OpenAIProvider` and `AnthropicProvider` live in
`.openai_compat` and `.anthropic` and are not imported here, so that importing this package does not
import either SDK.

Errors: `ProviderError` (`status`, `retryable`, `retry_after`) from providers; `ValueError` from the
registry for an unknown name and from `run_calls` for invalid arguments.
"""

from promptkeeper.evaluations.providers.base import (
    Completion,
    MemoryCache,
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
    ResponseCache,
)
from promptkeeper.evaluations.providers.executor import Call, Outcome, backoff_delay, run_calls
from promptkeeper.evaluations.providers.local import LocalProvider
from promptkeeper.evaluations.providers.registry import (
    ProviderFactory,
    get_provider,
    provider_names,
    register_provider,
    unregister_provider,
)

__all__ = [
    "Call",
    "Completion",
    "LocalProvider",
    "MemoryCache",
    "Outcome",
    "Provider",
    "ProviderError",
    "ProviderFactory",
    "ProviderRequest",
    "ProviderSettings",
    "ResponseCache",
    "backoff_delay",
    "get_provider",
    "provider_names",
    "register_provider",
    "run_calls",
    "unregister_provider",
]
