"""Exactly-once writes for retried requests.

A client that did not get an answer (a timeout, a server killed mid-request, a dropped
connection) cannot know whether its write happened; retrying blindly could create a second
version. With an `Idempotency-Key` header the claim on the key is inserted *in the transaction of
the write itself* (a `before_commit` hook on the request's write session), so the write and the
claim commit together or not at all:

- the original committed: the key is taken, and a retry is answered with the stored response
  (or, in the short moment before it is stored, 409 `idempotency_in_progress`: retry shortly);
- the original did not commit: there is no claim, and the retry simply does the work;
- two attempts run at once: the unique (scope, key) index lets one commit; the other's whole
  transaction is rolled back and it gets 409 `idempotency_in_progress`.

The response is stored right after the commit, before it is sent. If a process dies exactly in
between, the key stays claimed without a response: retries get 409 `idempotency_response_lost`
after `RESPONSE_GRACE` (the write happened; read the resource), never a second write. Keys are
kept for `RETENTION`.

Nothing stored here is a usable secret (docs/security.md): the caller's credential is kept as a
SHA-256 (it is a 256-bit random key), the request's fingerprint as an HMAC under the secret key (a
login body holds a password, which a plain hash would expose to guessing), and the answer
encrypted with the secret key (it may carry a new API key, webhook secret or session token).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from promptkeeper.core.secrets import SecretBox
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import insert_ignoring_duplicates
from promptkeeper.errors import Conflict, ValidationFailed
from promptkeeper.idempotency.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
RETENTION = timedelta(hours=24)
RESPONSE_GRACE = timedelta(seconds=30)


class KeyInProgress(Conflict):
    code = "idempotency_in_progress"


class ResponseLost(Conflict):
    code = "idempotency_response_lost"


class KeyReused(ValidationFailed):
    code = "idempotency_key_reused"


@dataclass
class Claim:
    scope: str
    key: str
    fingerprint: str
    method: str
    path: str
    claimed: bool = False
    #: fingerprints that also identify this request (under older secret keys, or unkeyed from
    #: before fingerprints were keyed): a retry across a key rotation is still recognised
    also: tuple[str, ...] = ()


def digest(*parts: bytes) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()


def fingerprints(box: SecretBox, *parts: bytes) -> tuple[str, tuple[str, ...]]:
    """The request's fingerprint to store, and the others it may have been stored under."""
    framed = b"".join(len(part).to_bytes(8, "big") + part for part in parts)
    keyed = box.mac(framed)
    return keyed[0], (*keyed[1:], digest(*parts))


def lookup(*, session: Session, claim: Claim, now: datetime | None = None) -> IdempotencyRecord | None:
    """The stored answer for this key, or None when the request must run.

    Raises `KeyReused` for the key on another request, `KeyInProgress` or `ResponseLost` for a
    write that committed but whose response is not stored (yet)."""
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == claim.scope,
            IdempotencyRecord.key == claim.key,
            IdempotencyRecord.created_at >= (now or utcnow()) - RETENTION,
        )
    )
    if record is None:
        return None
    if record.fingerprint != claim.fingerprint and record.fingerprint not in claim.also:
        raise KeyReused(
            f"header {HEADER}: '{claim.key}' was already used for a different request; "
            "use a new key for a new request",
            details={"field": f"header.{HEADER}"},
        )
    if record.status_code is None:
        if (now or utcnow()) - record.created_at > RESPONSE_GRACE:
            raise ResponseLost(
                f"the request with {HEADER} '{claim.key}' was applied, but its response was not "
                "recorded (the server stopped); read the resource to see the result",
                details={"field": f"header.{HEADER}"},
            )
        raise _in_progress(claim)
    return record


def _in_progress(claim: Claim) -> KeyInProgress:
    return KeyInProgress(
        f"a request with {HEADER} '{claim.key}' is being processed; retry in a moment",
        details={"field": f"header.{HEADER}", "retry_after": 1},
    )


def bind(session: Session, claim: Claim) -> None:
    """Make the session's first commit also take the key (or fail, changing nothing)."""

    def take(session: Session) -> None:
        if claim.claimed:
            return
        rows = [{"scope": claim.scope, "key": claim.key, "fingerprint": claim.fingerprint}]
        if not insert_ignoring_duplicates(session, IdempotencyRecord, rows, ["scope", "key"]):
            raise _in_progress(claim)
        claim.claimed = True

    event.listen(session, "before_commit", take)


def store_response(
    *, session: Session, claim: Claim, status_code: int, body: str, content_type: str | None
) -> None:
    """Record the answer: on the claim taken with the write, or (for a successful write that ran
    without a write session) on a new row."""
    values = {
        "status_code": status_code,
        "response_body": body,
        "content_type": content_type,
        "completed_at": utcnow(),
    }
    updated = session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.scope == claim.scope,
            IdempotencyRecord.key == claim.key,
            IdempotencyRecord.fingerprint == claim.fingerprint,
            IdempotencyRecord.status_code.is_(None),
        )
        .values(**values)
    )
    if not updated.rowcount and 200 <= status_code < 300:  # type: ignore[attr-defined]
        row = {"scope": claim.scope, "key": claim.key, "fingerprint": claim.fingerprint, **values}
        insert_ignoring_duplicates(session, IdempotencyRecord, [row], ["scope", "key"])


def purge(*, session: Session, now: datetime | None = None) -> int:
    """Forget keys older than `RETENTION`."""
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < (now or utcnow()) - RETENTION)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
