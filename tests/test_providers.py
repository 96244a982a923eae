"""Providers and the executor: the real `openai` and `anthropic` clients against tests/fake_llm.py servers,
the `local` provider, the registry, and the pure pieces (cache keys, backoff, Retry-After) by table."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from promptkeeper.evaluations.providers import (
    Call,
    Completion,
    LocalProvider,
    MemoryCache,
    Outcome,
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
    backoff_delay,
    get_provider,
    provider_names,
    register_provider,
    registry,
    run_calls,
    unregister_provider,
)
from promptkeeper.evaluations.providers.base import retry_after_seconds
from promptkeeper.evaluations.providers.executor import MAX_RETRY_AFTER
from tests.fake_llm import FakeLLM, fail, hang

SDK_PROVIDERS = ("openai", "anthropic")
OPENAI_KEY = "sk-test-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"


def user(text: str, model: str = "fake-model", **params: Any) -> ProviderRequest:
    return ProviderRequest(model=model, messages=[{"role": "user", "content": text}], params=params)


def settings_for(server: FakeLLM, **overrides: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "openai_base_url": server.openai_base_url,
        "openai_api_key": OPENAI_KEY,
        "anthropic_base_url": server.anthropic_base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
    }
    values.update(overrides)
    return ProviderSettings(**values)


async def _aclose(provider: Provider) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()


def run(provider: Provider, calls: list[Call], **options: Any) -> list[Outcome]:
    """`run_calls` in a fresh event loop with fast test defaults; the provider's clients are closed after."""
    arguments: dict[str, Any] = {"concurrency": 4, "timeout": 5.0, "max_retries": 3, "retry_base": 0.0}
    arguments.update(options)

    async def scenario() -> list[Outcome]:
        try:
            return await run_calls(provider, calls, **arguments)
        finally:
            await _aclose(provider)

    return asyncio.run(scenario())


def complete_async(provider: Provider, request: ProviderRequest, timeout: float = 5.0) -> Completion:
    async def scenario() -> Completion:
        try:
            return await provider.acomplete(request, timeout=timeout)
        finally:
            await _aclose(provider)

    return asyncio.run(scenario())


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(params=SDK_PROVIDERS)
def sdk_provider(request: pytest.FixtureRequest, server: FakeLLM) -> Iterator[Provider]:
    provider = get_provider(request.param, settings_for(server))
    yield provider
    close = getattr(provider, "close", None)
    if close is not None:
        close()


# --- the SDK-backed providers against the fake servers ---


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sdk_provider_returns_text_usage_and_ttft(sdk_provider: Provider, server: FakeLLM, mode: str) -> None:
    server.latency_ms = 30
    request = user("the quick brown fox", temperature=0.2)
    if mode == "sync":
        completion = sdk_provider.complete(request, timeout=5)
    else:
        completion = complete_async(sdk_provider, request)
    assert completion.text == "the quick brown fox"
    assert (completion.input_tokens, completion.output_tokens) == (4, 4)
    assert completion.model == "fake-model"
    assert completion.cached is False
    assert completion.ttft_ms is not None
    assert 25 <= completion.ttft_ms <= completion.latency_ms
    assert server.requests == 1
    assert server.bodies[0]["stream"] is True
    assert server.bodies[0]["temperature"] == 0.2


def test_openai_sends_key_and_params_and_drops_local_ones(server: FakeLLM) -> None:
    provider = get_provider("openai", settings_for(server))
    request = user("hi", seed=7, max_tokens=20, stop=["\n"], top_k=3, local_latency_ms=500)
    complete_async(provider, request)
    body = server.bodies[0]
    assert server.credentials == [OPENAI_KEY]
    assert {k: body[k] for k in ("seed", "max_tokens", "stop", "top_k")} == {
        "seed": 7,
        "max_tokens": 20,
        "stop": ["\n"],
        "top_k": 3,
    }
    assert body["stream_options"] == {"include_usage": True}
    assert not any(k.startswith("local_") for k in body)


def test_openai_without_usage_chunk_reports_no_tokens() -> None:
    with FakeLLM(send_usage=False) as server:
        completion = complete_async(get_provider("openai", settings_for(server)), user("no usage here"))
    assert completion.text == "no usage here"
    assert (completion.input_tokens, completion.output_tokens) == (None, None)


def test_anthropic_extracts_system_and_maps_params(server: FakeLLM) -> None:
    seen: list[list[dict[str, Any]]] = []

    def reply(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        return "Bonjour !"

    server.reply = reply
    request = ProviderRequest(
        model="claude-test",
        messages=[
            {"role": "system", "content": "You translate."},
            {"role": "system", "content": "Into French."},
            {"role": "user", "content": "Hello!"},
        ],
        params={"temperature": 0, "stop": "\n\n", "seed": 1, "local_fail": {"status": 500}},
    )
    completion = complete_async(get_provider("anthropic", settings_for(server)), request)
    body = server.bodies[0]
    assert body["system"] == "You translate.\n\nInto French."
    assert body["messages"] == [{"role": "user", "content": "Hello!"}]
    assert body["max_tokens"] == 1024
    assert body["stop_sequences"] == ["\n\n"]
    assert body["temperature"] == 0
    assert "seed" not in body and "stop" not in body and "local_fail" not in body
    assert server.credentials == [ANTHROPIC_KEY]
    assert seen[0][0] == {"role": "system", "content": "You translate.\n\nInto French."}
    assert completion.text == "Bonjour !"
    assert (completion.input_tokens, completion.output_tokens) == (5, 2)


def test_anthropic_keeps_an_explicit_max_tokens(server: FakeLLM) -> None:
    get_provider("anthropic", settings_for(server)).complete(user("x", max_tokens=5), timeout=5)
    assert server.bodies[0]["max_tokens"] == 5


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_statuses_are_retried_until_success(
    sdk_provider: Provider, server: FakeLLM, status: int
) -> None:
    server.add_faults(*fail(status, times=2, retry_after="0"))
    [outcome] = run(sdk_provider, [Call(key="a", request=user("again"))], max_retries=3)
    assert outcome.error is None
    assert outcome.completion is not None and outcome.completion.text == "again"
    assert outcome.attempts == 3
    assert server.requests == 3


def test_retries_stop_after_max_retries(sdk_provider: Provider, server: FakeLLM) -> None:
    server.add_faults(*fail(500, times=10))
    [outcome] = run(sdk_provider, [Call(key="a", request=user("x"))], max_retries=2)
    assert outcome.completion is None
    assert (
        outcome.error is not None
        and "HTTP 500" in outcome.error
        and "gave up after 3 attempts" in outcome.error
    )
    assert outcome.error.startswith(f"{sdk_provider.name}:")
    assert outcome.attempts == 3
    assert server.requests == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_non_retryable_statuses_fail_at_once(sdk_provider: Provider, server: FakeLLM, status: int) -> None:
    server.add_faults(*fail(status, message="model not allowed"))
    [outcome] = run(sdk_provider, [Call(key="a", request=user("x"))], max_retries=3)
    assert outcome.completion is None
    assert (
        outcome.error is not None
        and f"HTTP {status}" in outcome.error
        and "model not allowed" in outcome.error
    )
    assert outcome.attempts == 1
    assert server.requests == 1


def test_retry_after_is_honoured_over_a_long_backoff(sdk_provider: Provider, server: FakeLLM) -> None:
    """retry_base=60 would make the retry wait 30-60 s; the server's `Retry-After: 0` wins."""
    server.add_faults(*fail(429, retry_after="0"))
    started = time.monotonic()
    [outcome] = run(sdk_provider, [Call(key="a", request=user("x"))], retry_base=60.0)
    assert outcome.attempts == 2 and outcome.error is None
    assert time.monotonic() - started < 20


def test_hanging_server_times_out_every_attempt(sdk_provider: Provider, server: FakeLLM) -> None:
    server.add_faults(*hang(30, times=10))
    [outcome] = run(sdk_provider, [Call(key="a", request=user("x"))], timeout=0.3, max_retries=2)
    assert outcome.completion is None
    assert outcome.error is not None and "timed out" in outcome.error
    assert outcome.attempts == 3
    # The client gives up on the last attempt after 0.3 s; under load the server's handler may not
    # have counted that request yet, so wait for it (and then require exactly three).
    deadline = time.monotonic() + 5
    while server.requests < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.requests == 3


def test_a_refused_connection_is_retried_then_reported() -> None:
    with FakeLLM() as server:
        settings = settings_for(server)
    provider = get_provider("openai", settings)  # the server is gone: the port refuses connections
    [outcome] = run(provider, [Call(key="a", request=user("x"))], max_retries=1)
    assert outcome.error is not None and "connection error" in outcome.error
    assert outcome.attempts == 2


def test_the_api_key_never_appears_in_errors(sdk_provider: Provider, server: FakeLLM) -> None:
    server.add_faults(*fail(401, message="invalid key: {auth}"))
    [outcome] = run(sdk_provider, [Call(key="a", request=user("x"))])
    assert server.credentials[0] in (OPENAI_KEY, ANTHROPIC_KEY)
    assert outcome.error is not None and "invalid key: ***" in outcome.error
    assert OPENAI_KEY not in outcome.error and ANTHROPIC_KEY not in outcome.error
    assert OPENAI_KEY not in repr(settings_for(server)) and ANTHROPIC_KEY not in repr(settings_for(server))


@pytest.mark.parametrize(
    ("name", "setting"),
    [("openai", "PROMPTKEEPER_OPENAI_API_KEY"), ("anthropic", "PROMPTKEEPER_ANTHROPIC_API_KEY")],
)
def test_a_missing_key_is_a_clear_non_retryable_error(name: str, setting: str) -> None:
    provider = get_provider(name, ProviderSettings())
    [outcome] = run(provider, [Call(key="a", request=user("x"))])
    assert outcome.error is not None and outcome.error.startswith(f"{name}: {setting} is not set")
    assert outcome.attempts == 1
    with pytest.raises(ProviderError, match=setting):
        provider.complete(user("x"), timeout=1)


def test_a_base_url_without_key_is_enough_for_local_servers(server: FakeLLM) -> None:
    provider = get_provider("openai", ProviderSettings(openai_base_url=server.openai_base_url))
    assert provider.complete(user("ollama style"), timeout=5).text == "ollama style"
    assert server.credentials == ["not-needed"]


def test_concurrency_bound_is_respected(sdk_provider: Provider, server: FakeLLM) -> None:
    server.latency_ms = 50
    calls = [Call(key=i, request=user(f"case {i}")) for i in range(20)]
    outcomes = run(sdk_provider, calls, concurrency=4)
    assert [o.key for o in outcomes] == list(range(20))
    assert all(o.error is None for o in outcomes)
    assert server.requests == 20
    assert 1 < server.max_in_flight <= 4


def test_second_run_is_served_from_the_cache(sdk_provider: Provider, server: FakeLLM) -> None:
    cache = MemoryCache()
    calls = [Call(key=(i, r), request=user(f"case {i}"), repeat=r) for i in range(5) for r in range(2)]
    first = run(sdk_provider, calls, cache=cache)
    assert server.requests == 10 and len(cache) == 10
    assert all(o.completion is not None and not o.completion.cached for o in first)
    server.reset()
    second = run(sdk_provider, calls, cache=cache)
    assert server.requests == 0
    assert all(o.completion is not None and o.completion.cached and o.attempts == 0 for o in second)
    assert [o.completion.text for o in second if o.completion] == [
        o.completion.text for o in first if o.completion
    ]


def test_failures_are_not_cached(server: FakeLLM) -> None:
    cache = MemoryCache()
    provider = get_provider("openai", settings_for(server))
    server.add_faults(*fail(400))
    run(provider, [Call(key="a", request=user("x"))], cache=cache)
    assert len(cache) == 0
    [outcome] = run(provider, [Call(key="a", request=user("x"))], cache=cache)
    assert outcome.completion is not None and not outcome.completion.cached
    assert server.requests == 2


# --- the executor with the local provider and hand-written providers ---


def test_on_outcome_streams_every_outcome_sync_and_async() -> None:
    provider = LocalProvider()
    calls = [Call(key=i, request=user(f"n{i}", local_latency_ms=(10 - i) * 5)) for i in range(10)]
    seen_sync: list[Any] = []
    seen_async: list[Any] = []

    async def record(outcome: Outcome) -> None:
        await asyncio.sleep(0)
        seen_async.append(outcome.key)

    outcomes = run(provider, calls, concurrency=10, on_outcome=lambda o: seen_sync.append(o.key))
    run(provider, calls, concurrency=10, on_outcome=record)
    assert [o.key for o in outcomes] == list(range(10))  # returned in the order of the calls
    assert sorted(seen_sync) == list(range(10)) == sorted(seen_async)
    assert seen_sync[0] == 9  # the shortest call finished first


def test_an_exception_in_on_outcome_reaches_the_caller() -> None:
    def explode(outcome: Outcome) -> None:
        raise RuntimeError("storage is down")

    with pytest.raises(RuntimeError, match="storage is down"):
        run(LocalProvider(), [Call(key=1, request=user("x"))], on_outcome=explode)


class Broken:
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        raise NotImplementedError

    async def acomplete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        self.calls += 1
        if request.messages[-1]["content"] == "bug":
            raise KeyError("choices")
        return Completion(text="fine", input_tokens=None, output_tokens=None, latency_ms=1.0, ttft_ms=None)


def test_a_provider_bug_fails_its_call_only() -> None:
    provider = Broken()
    outcomes = run(provider, [Call(key=1, request=user("bug")), Call(key=2, request=user("ok"))])
    assert outcomes[0].error == "broken: KeyError: 'choices'" and outcomes[0].attempts == 1
    assert outcomes[1].completion is not None and outcomes[1].completion.text == "fine"
    assert provider.calls == 2


@pytest.mark.parametrize(
    "options",
    [{"concurrency": 0}, {"timeout": 0}, {"max_retries": -1}, {"retry_base": -0.1}],
)
def test_run_calls_rejects_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        run(LocalProvider(), [], **options)


def test_run_calls_with_no_calls() -> None:
    assert run(LocalProvider(), []) == []


# --- the local provider ---


def test_local_provider_is_deterministic_and_echoes() -> None:
    provider = LocalProvider()
    request = ProviderRequest(
        model="demo",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "second question here"},
        ],
    )
    first = provider.complete(request, timeout=1)
    second = complete_async(provider, request)
    assert first.text == second.text == "second question here"
    assert (first.input_tokens, first.output_tokens) == (2 + 2 + 2 + 3, 3)
    assert first.model == "demo" and first.ttft_ms == first.latency_ms


def test_local_responses_map_the_last_user_message() -> None:
    responses = {"capital of France?": "Paris"}
    provider = LocalProvider()
    assert provider.complete(user("capital of France?", local_responses=responses), timeout=1).text == "Paris"
    assert provider.complete(user("unknown", local_responses=responses), timeout=1).text == "unknown"


def test_local_latency_is_slept() -> None:
    provider = LocalProvider()
    started = time.perf_counter()
    completion = provider.complete(user("x", local_latency_ms=30), timeout=1)
    assert time.perf_counter() - started >= 0.029
    assert completion.latency_ms >= 29
    assert complete_async(provider, user("x", local_latency_ms=30)).latency_ms >= 29


def test_local_latency_beyond_the_timeout_times_out() -> None:
    [outcome] = run(
        LocalProvider(),
        [Call(key=1, request=user("x", local_latency_ms=10_000))],
        timeout=0.05,
        max_retries=1,
    )
    assert outcome.error is not None and "timed out" in outcome.error and outcome.attempts == 2


@pytest.mark.parametrize(("status", "times", "attempts", "ok"), [(429, 2, 3, True), (500, 5, 4, False)])
def test_local_fail_exercises_retries(status: int, times: int, attempts: int, ok: bool) -> None:
    provider = LocalProvider()
    fail_spec = {"status": status, "times": times}
    calls = [Call(key=i, request=user(f"q{i}", local_fail=fail_spec)) for i in range(3)]
    outcomes = run(provider, calls, max_retries=3)
    assert [o.attempts for o in outcomes] == [attempts] * 3  # counted per distinct request
    assert all((o.error is None) == ok for o in outcomes)
    if not ok:
        assert outcomes[0].error is not None and "injected HTTP 500" in outcomes[0].error


def test_local_fail_with_a_client_error_is_not_retried() -> None:
    [outcome] = run(LocalProvider(), [Call(key=1, request=user("x", local_fail={"status": 400, "times": 1}))])
    assert outcome.attempts == 1 and outcome.error is not None and "HTTP 400" in outcome.error


# --- cache keys, completions, backoff, Retry-After ---

BASE = ProviderRequest(model="m", messages=[{"role": "user", "content": "hi"}], params={"temperature": 0})


@pytest.mark.parametrize(
    ("provider", "request_", "repeat"),
    [
        ("other", BASE, 0),
        ("p", ProviderRequest(model="m2", messages=BASE.messages, params=BASE.params), 0),
        (
            "p",
            ProviderRequest(model="m", messages=[{"role": "user", "content": "hi!"}], params=BASE.params),
            0,
        ),
        (
            "p",
            ProviderRequest(model="m", messages=[{"role": "system", "content": "hi"}], params=BASE.params),
            0,
        ),
        ("p", ProviderRequest(model="m", messages=BASE.messages, params={"temperature": 0.1}), 0),
        ("p", ProviderRequest(model="m", messages=BASE.messages, params={"temperature": 0, "seed": 1}), 0),
        ("p", ProviderRequest(model="m", messages=BASE.messages), 0),
        ("p", BASE, 1),
    ],
)
def test_cache_key_changes_with_everything_that_changes_the_answer(
    provider: str, request_: ProviderRequest, repeat: int
) -> None:
    assert request_.cache_key(provider, repeat) != BASE.cache_key("p", 0)


def test_cache_key_is_stable_and_ignores_param_order() -> None:
    a = ProviderRequest(model="m", messages=[{"role": "user", "content": "hi"}], params={"a": 1, "b": [1, 2]})
    b = ProviderRequest(model="m", messages=[{"content": "hi", "role": "user"}], params={"b": [1, 2], "a": 1})
    assert a.cache_key("p", 0) == b.cache_key("p", 0)
    assert len(a.cache_key("p", 0)) == 64 and int(a.cache_key("p", 0), 16) >= 0


def test_completion_round_trips_through_a_dict() -> None:
    completion = Completion(
        text="t", input_tokens=3, output_tokens=None, latency_ms=12.5, ttft_ms=3.0, model="m", cached=True
    )
    assert Completion.from_dict(completion.to_dict()) == completion
    assert Completion.from_dict(
        {"text": "t", "input_tokens": 1, "output_tokens": 2, "latency_ms": 1, "ttft_ms": None}
    ) == (Completion(text="t", input_tokens=1, output_tokens=2, latency_ms=1.0, ttft_ms=None))


@pytest.mark.parametrize(
    ("attempt", "retry_base", "retry_after", "low", "high"),
    [
        (1, 0.5, None, 0.25, 0.5),
        (2, 0.5, None, 0.5, 1.0),
        (4, 0.5, None, 2.0, 4.0),
        (20, 0.5, None, 15.0, 30.0),  # capped at MAX_BACKOFF
        (1, 0.0, None, 0.0, 0.0),
        (3, 0.5, 0.0, 0.0, 0.0),  # Retry-After wins, even when shorter
        (1, 0.5, 7.0, 7.0, 7.0),
        (1, 0.5, 3600.0, MAX_RETRY_AFTER, MAX_RETRY_AFTER),
    ],
)
def test_backoff_delay(
    attempt: int, retry_base: float, retry_after: float | None, low: float, high: float
) -> None:
    rng = random.Random(0)
    for _ in range(50):
        delay = backoff_delay(attempt, retry_base=retry_base, retry_after=retry_after, rng=rng)
        assert low <= delay <= high


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str] | None, expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


# --- the registry ---


def test_built_in_providers_are_registered() -> None:
    assert {"local", "openai", "anthropic"} <= set(provider_names())
    assert get_provider("local", ProviderSettings()).name == "local"


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown provider 'nope'; known providers: .*anthropic.*local.*openai"
    ):
        get_provider("nope", ProviderSettings())


class Shouting:
    """A user's provider: upper-cases the prompt."""

    def __init__(self, settings: ProviderSettings, name: str = "shouting") -> None:
        self.name = name
        self.timeout = settings.timeout

    def complete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        text = request.messages[-1]["content"].upper()
        return Completion(text=text, input_tokens=None, output_tokens=None, latency_ms=0.0, ttft_ms=None)

    async def acomplete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        return self.complete(request, timeout=timeout)


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test disappear after it."""
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))


@pytest.mark.usefixtures("clean_registry")
def test_a_registered_provider_is_built_by_get_provider() -> None:
    register_provider("shouting", Shouting)
    assert "shouting" in provider_names()
    provider = get_provider("shouting", ProviderSettings(timeout=7))
    assert isinstance(provider, Shouting) and provider.timeout == 7
    [outcome] = run(provider, [Call(key=1, request=user("quiet please"))])
    assert outcome.completion is not None and outcome.completion.text == "QUIET PLEASE"


@pytest.mark.usefixtures("clean_registry")
def test_a_name_is_registered_once_unless_replaced() -> None:
    with pytest.raises(ValueError, match="'local' is already registered"):
        register_provider("local", lambda settings: Shouting(settings, name="local"))
    register_provider("local", lambda settings: Shouting(settings, name="local"), replace=True)
    assert get_provider("local", ProviderSettings()).complete(user("x"), timeout=1).text == "X"
    unregister_provider("local")
    assert "local" not in provider_names()
    unregister_provider("local")  # unknown names are ignored


@pytest.mark.usefixtures("clean_registry")
def test_a_factory_must_build_a_provider_of_its_name() -> None:
    register_provider("loud", Shouting)
    with pytest.raises(ValueError, match="built a provider named 'shouting'"):
        get_provider("loud", ProviderSettings())


@pytest.mark.parametrize("name", ["", " ", " padded", "Upper", "1st", "a" * 65, "judge:openai"])
def test_provider_names_must_be_clean(name: str) -> None:
    with pytest.raises(ValueError):
        register_provider(name, Shouting)
