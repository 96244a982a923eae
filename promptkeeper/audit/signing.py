"""Webhook signatures and request shapes: pure functions, also what a receiver needs.

See docs/webhooks.md for verifying a delivery without PromptKeeper installed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from promptkeeper import __version__

USER_AGENT = f"PromptKeeper-Webhooks/{__version__}"
SIGNATURE_PREFIX = "sha256="
MAX_RETRY_DELAY = 3600.0
#: How far a receiver's clock and ours may disagree before `verify` rejects a signature.
DEFAULT_TOLERANCE = 300.0


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """`sha256=` + hex HMAC-SHA256 of `"{timestamp}.{body}"` under the webhook's secret.

    The timestamp is inside the signed text so that a captured request cannot be replayed later
    with a fresh timestamp header.
    """
    raw = body.encode() if isinstance(body, str) else body
    message = f"{timestamp}.".encode() + raw
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: int | str,
    body: bytes | str,
    signature: str,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether `signature` is ours for this body and timestamp, and the timestamp is recent.

    Compared in constant time. `tolerance=None` skips the freshness check (replaying a delivery
    log); `now` is the current unix time (default: the clock).
    """
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - stamp) > tolerance:
            return False
    expected = sign(secret, stamp, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base, 2·base, 4·base, … ≤ 1 h."""
    exponent = min(max(attempts - 1, 0), 32)  # 2**32 · base is past the cap for any sane base
    return min(MAX_RETRY_DELAY, base * 2.0**exponent)


def encode_body(payload: dict[str, Any], delivery_id: int) -> bytes:
    """The request body: the queued payload plus the delivery id, as compact JSON."""
    return json.dumps({**payload, "delivery": delivery_id}, separators=(",", ":"), default=str).encode()


def request_headers(
    *, secret: str, event: str, delivery_id: int, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-PromptKeeper-Event": event,
        "X-PromptKeeper-Delivery": str(delivery_id),
        "X-PromptKeeper-Timestamp": str(timestamp),
        "X-PromptKeeper-Signature": sign(secret, timestamp, body),
    }
