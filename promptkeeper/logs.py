"""Logging for `serve` and `worker`: readable lines, or one JSON object per line for log pipelines
(`PROMPTKEEPER_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from promptkeeper.config import Settings
from promptkeeper.core.urls import scrub_urls

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "exception"?}` plus the record's `extra` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
                )
        return json.dumps(entry, ensure_ascii=False)


class RedactUrls(logging.Filter):
    """Cuts the URLs in a logger's lines down to scheme and host.

    httpx logs every request at INFO with its full URL (`HTTP Request: POST http://user:pw@host/
    hook?token=…`); webhook URLs, and some provider URLs, carry credentials in the userinfo, the
    path or the query. The filter sits on the logger itself, so it applies whatever the handlers
    and levels are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = scrub_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_http_logs() -> None:
    """Install `RedactUrls` on httpx's logger, once (idempotent; the dispatcher calls it too)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactUrls) for f in logger.filters):
        logger.addFilter(RedactUrls())


def configure_logging(settings: Settings) -> None:
    redact_http_logs()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
