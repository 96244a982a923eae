"""What the sync and async clients share: requests, responses, errors, SSE parsing, the snapshot."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from promptkeeper.client._prompt import Prompt
from promptkeeper.errors import ERRORS_BY_CODE, PromptKeeperError, Unavailable

log = logging.getLogger("promptkeeper.client")

SNAPSHOT_FORMAT = 1


class PromptUnavailable(Unavailable):
    """No source could provide the prompt: server, cache, snapshot and fallback all failed."""

    code = "prompt_unavailable"

    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"prompt '{name}' is unavailable: {cause}", details={"prompt": name})
        self.name = name
        self.cause = cause


class _Retryable(Exception):
    """A failure worth retrying (network, 5xx, 429)."""


@dataclass(slots=True)
class Entry:
    prompt: Prompt
    expires: float


@dataclass(slots=True)
class Floor:
    """A revision announced on the stream and not yet served: refreshes ask `source` first, and an
    answer below `revision` is kept only until the next retry (issue 20.4)."""

    revision: int
    source: str | None
    since: float
    attempts: int = 0


def resolve_path(name: str) -> str:
    return "/v1/resolve/" + quote(name, safe="")


IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Writes wait longer than reads (a deploy may run gates), and retry on a schedule that outlasts the
#: server's "in progress" answer (Retry-After: 1) for a concurrent attempt with the same key.
WRITE_TIMEOUT = 30.0
WRITE_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class Write:
    """One registry write: sent with one `Idempotency-Key` however often it is retried, on whichever
    server URL, so it is applied once."""

    path: str
    body: dict[str, Any]
    key: str


def prompt_path(name: str) -> str:
    return "/v1/prompts/" + quote(name, safe="")


def prompt_write(name: str, content: Mapping[str, Any], fields: Mapping[str, Any]) -> Write:
    return Write("/v1/prompts", {"name": name, "content": dict(content), **fields}, uuid.uuid4().hex)


def version_write(
    name: str, content: Mapping[str, Any], message: str | None, base_version: int | None
) -> Write:
    body: dict[str, Any] = {"content": dict(content)}
    if message is not None:
        body["message"] = message
    if base_version is not None:
        body["base_version"] = base_version
    return Write(prompt_path(name) + "/versions", body, uuid.uuid4().hex)


def deploy_write(name: str, environment: str, version: int, reason: str | None) -> Write:
    body: dict[str, Any] = {"environment": environment, "version": version}
    if reason is not None:
        body["reason"] = reason
    return Write(prompt_path(name) + "/deployments", body, uuid.uuid4().hex)


def batch_key(batch: list[dict[str, Any]]) -> str:
    """An event batch's Idempotency-Key, from its content: a batch re-sent after a lost answer is
    the same batch (each event carries its time), so the server answers it without counting it
    twice; a batch that grew meanwhile is a new request with a new key."""
    canonical = json.dumps(batch, sort_keys=True, separators=(",", ":"), default=str)
    return "events-" + hashlib.sha256(canonical.encode()).hexdigest()


def check_write_response(response: httpx.Response) -> dict[str, Any]:
    """The created object; `_Retryable` while another attempt with the same key is in flight."""
    if response.status_code == 409:
        try:
            in_progress = response.json()["error"]["code"] == "idempotency_in_progress"
        except (ValueError, KeyError, TypeError):
            in_progress = False
        if in_progress:
            raise _Retryable("HTTP 409: the same write is in progress")
    check_response(response)
    body: dict[str, Any] = response.json()
    return body


def resolve_params(environment: str | None, version: int | None, raw: bool = False) -> dict[str, str]:
    params = (
        {"version": str(version)} if version is not None else {"environment": environment or "production"}
    )
    if raw:
        params["resolve"] = "false"
    return params


def error_from_response(response: httpx.Response) -> PromptKeeperError:
    """The documented exception for a server error body (`{"error": {code, message, details}}`)."""
    try:
        error = response.json()["error"]
        cls = ERRORS_BY_CODE.get(error["code"], PromptKeeperError)
        return cls(str(error["message"]), details=error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        return PromptKeeperError(f"HTTP {response.status_code} from {response.request.url}")


def check_response(response: httpx.Response) -> None:
    """Raise `_Retryable` for answers worth retrying, the mapped error for other failures."""
    if response.status_code in (429, 502, 503, 504) or response.status_code >= 500:
        raise _Retryable(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise error_from_response(response)


def prompt_from(response: httpx.Response, previous: Prompt | None) -> Prompt:
    if response.status_code == 304 and previous is not None:
        return previous
    return Prompt.from_resolve(response.json(), etag=response.headers.get("etag"))


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class SSEParser:
    """Incremental Server-Sent Events parser (the subset the server emits)."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None
        self.last_id: str | None = None

    def feed_line(self, line: str) -> tuple[str, str, str | None] | None:
        """Feed one line (without newline); returns `(event, data, id)` when an event completes."""
        if line == "":
            if not self._data and self._event == "message":
                return None
            event = (self._event, "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
            self._event, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None


def parse_change(data: str) -> tuple[str, str, int] | None:
    try:
        raw = json.loads(data)
        return str(raw["prompt"]), str(raw["environment"]), int(raw["revision"])
    except (ValueError, KeyError, TypeError):
        return None


class Snapshot:
    """The on-disk last-known-good copy of every prompt fetched, rewritten atomically.

    A new process that cannot reach the server reads it; the file is replaced with `os.replace`,
    so a crash mid-write leaves the previous snapshot intact.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("format") == SNAPSHOT_FORMAT:
                    self._entries = dict(data.get("prompts", {}))
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("ignoring unreadable prompt snapshot %s: %s", self.path, exc)

    @staticmethod
    def _key(name: str, environment: str | None, version: int | None) -> str:
        return f"{name}@v{version}" if version is not None else f"{name}@{environment}"

    def get(self, name: str, environment: str | None, version: int | None) -> Prompt | None:
        raw = self._entries.get(self._key(name, environment, version))
        if raw is None:
            return None
        try:
            return Prompt.from_resolve(raw, etag=raw.get("etag"), source="snapshot")
        except (KeyError, TypeError):
            return None

    def put(self, prompt: Prompt, *, pinned: bool) -> None:
        if self.path is None:
            return
        key = self._key(prompt.name, prompt.environment, prompt.version if pinned else None)
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.get("etag") == prompt.etag and prompt.etag is not None:
                return
            self._entries[key] = prompt.to_dict()
            self._write()

    def _write(self) -> None:
        assert self.path is not None
        document = json.dumps({"format": SNAPSHOT_FORMAT, "prompts": self._entries})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".snapshot-", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                handle.write(document)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("could not write prompt snapshot %s: %s", self.path, exc)


def normalize_urls(url: str | list[str] | tuple[str, ...]) -> list[str]:
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("Client needs at least one server URL")
    return [u.rstrip("/") for u in urls]


def normalize_fallbacks(fallbacks: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(fallbacks or {})
    for name, value in out.items():
        Prompt.from_fallback(name, value, None)  # validate early: a bad fallback is a bug, not an outage
    return out
