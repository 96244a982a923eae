"""The HTTP client that sends webhook deliveries, with the egress policy applied where it counts.

The policy (`promptkeeper.core.egress`) is checked inside the connection pool's network backend:
the receiver's host is resolved once per connection, every address it resolves to is checked,
and the socket is opened to one of the addresses that passed, by address. Nothing resolves the
name a second time, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot point the connection somewhere else. Connections are pooled by host name (TLS
verifies the name, as usual); a pooled connection was checked when it was opened.

The client follows no redirects (a 3xx is a failed attempt: the policy never sees a `Location`),
reads no proxy or `.netrc` settings from the environment (they would route around the policy, or
send credentials to receivers), and its request log lines (httpx's INFO `HTTP Request: POST …`)
carry only the scheme and host: see `promptkeeper.logs.redact_http_logs`.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpcore
import httpx

from promptkeeper.core.egress import EgressPolicy
from promptkeeper.core.urls import scrub_urls
from promptkeeper.logs import redact_http_logs

#: Every address a host resolves to (strings), for a port. Tests give their own.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class EgressRefused(Exception):
    """The receiver is somewhere the egress policy refuses; nothing was connected to."""


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PolicyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolver(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        trusted = self._policy.host_allowed(host)
        allowed: list[str] = []
        refusals: list[str] = []
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.partition("%")[0])
            except ValueError:
                refusals.append(f"{text} is not an IP address")
                continue
            reason = None if trusted else self._policy.refusal(address)
            if reason is None:
                allowed.append(text)
            else:
                refusals.append(reason)
        if not allowed:
            named = "" if host.strip("[]") == addresses[0].partition("%")[0] else f"{host}: "
            raise EgressRefused(named + refusals[0])
        error: httpcore.ConnectError | None = None
        for checked in allowed:
            try:
                return await self._inner.connect_tcp(
                    checked, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("webhooks cannot use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS client context per process, read when the first dispatcher starts (SSL_CERT_FILE/DIR
    still apply): loading the CA bundle costs about 20 ms of CPU, and every app built (a test each)
    paid it twice. Sharing it is safe: a context is configuration, thread-safe once built, and the
    only thing httpcore sets on it later is the ALPN list, the same `http/1.1` for every pool here."""
    return httpx.create_ssl_context()


class _PolicyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with our network backend (httpx has no argument for one)."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        # the context given, or httpx would build one for the pool replaced below
        super().__init__(verify=_ssl_context(), trust_env=False)
        limits = httpx.Limits()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PolicyBackend(policy, resolver),
        )


def webhook_client(
    *,
    timeout: float,
    policy: EgressPolicy,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The dispatcher's client; `transport` replaces the network entirely (tests, the fuzzer)."""
    redact_http_logs()
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        transport=transport
        if transport is not None
        else _PolicyTransport(policy, resolver or system_resolver),
    )


def split_userinfo(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """The URL without `user:password@`, and those as Basic auth (what httpx would send): the URL
    httpx logs and puts in its errors then carries no credentials."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), httpx.BasicAuth(unquote(user), unquote(password))


def status_text(code: int) -> str:
    """`HTTP 500 Internal Server Error`: the standard phrase, never the receiver's own words."""
    if 200 <= code < 300:
        return ""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def scrub_error(error: str, url: str) -> str:
    """An error as the delivery log and the logs show it: no URL beyond scheme and host, none of
    the URL's credentials even in pieces, at most 200 characters."""
    parts = urlsplit(url)
    secrets = [parts.query, parts.netloc.rpartition("@")[0], parts.password or "", parts.username or ""]
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            error = error.replace(secret, "***")
    return scrub_urls(error)[:200]
