"""URLs as logs and records show them: cut to scheme and host, or with credentials masked.

Pure, so that logging (below every domain) and the webhooks (audit) share one definition.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def where(url: str) -> str:
    """Scheme and host of a receiver, for logs: paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def redact_url(url: str) -> str:
    """A receiver's URL as the audit log and delivery payloads show it: userinfo and query values
    masked (`http://***@host/path?token=***`), since they usually are credentials."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "=" in pair else "***" for pair in parts.query.split("&") if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]*")


def scrub_urls(text: str) -> str:
    """Every URL in `text` cut down to its scheme and host (`where`): for log lines and errors."""
    return _URL.sub(lambda match: where(match.group(0)), text)
