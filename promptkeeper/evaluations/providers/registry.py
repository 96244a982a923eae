"""Provider names → factories. The built-in providers register here exactly as a user's would.

    from promptkeeper.evaluations.providers import register_provider
    register_provider("mine", lambda settings: MyProvider(settings))

A name is registered once; `replace=True` overrides an existing provider, built-in included (as for
scorers, so two plugins cannot clash silently). The SDK-backed built-ins import their SDK only when first
built, so that `local` works (and the server starts) without paying for imports it may never use.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from promptkeeper.evaluations.providers.base import Provider, ProviderSettings
from promptkeeper.evaluations.providers.local import LocalProvider

ProviderFactory = Callable[[ProviderSettings], Provider]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_factories: dict[str, ProviderFactory] = {}
_lock = threading.Lock()


def register_provider(name: str, factory: ProviderFactory, *, replace: bool = False) -> None:
    """Make `factory(settings)` available as `name`; the provider it builds must be named `name`."""
    if not _NAME.match(name):
        raise ValueError(f"provider name {name!r} must match {_NAME.pattern}")
    with _lock:
        if name in _factories and not replace:
            raise ValueError(f"provider {name!r} is already registered (pass replace=True to override it)")
        _factories[name] = factory


def unregister_provider(name: str) -> None:
    """Remove a provider (for plugins being unloaded, and tests); unknown names are ignored."""
    with _lock:
        _factories.pop(name, None)


def get_provider(name: str, settings: ProviderSettings) -> Provider:
    """A new provider instance; the caller owns it (and closes it if it has `aclose`/`close`).

    The instance must carry the name it was registered under: the name is part of every cache key, and a
    run computes keys from the name it asked for."""
    with _lock:
        factory = _factories.get(name)
    if factory is None:
        raise ValueError(f"unknown provider {name!r}; known providers: {', '.join(provider_names())}")
    provider = factory(settings)
    if provider.name != name:
        raise ValueError(
            f"the factory registered as {name!r} built a provider named {provider.name!r}; "
            f"pass name={name!r} to the provider's constructor"
        )
    return provider


def provider_names() -> list[str]:
    with _lock:
        return sorted(_factories)


def _openai(settings: ProviderSettings) -> Provider:
    from promptkeeper.evaluations.providers.openai_compat import OpenAIProvider

    return OpenAIProvider(settings)


def _anthropic(settings: ProviderSettings) -> Provider:
    from promptkeeper.evaluations.providers.anthropic import AnthropicProvider

    return AnthropicProvider(settings)


register_provider("local", LocalProvider)
register_provider("openai", _openai)
register_provider("anthropic", _anthropic)
