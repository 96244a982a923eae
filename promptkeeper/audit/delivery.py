"""The webhook dispatcher: sends the deliveries that `record` queued, after their commit.

One `Dispatcher` runs in each server process, as an asyncio task. It wakes when a transaction that
queued deliveries commits (`DeliveriesQueued`, a post-commit event), when a retry falls due, and at
least every `poll_interval` seconds (deliveries queued by other processes, or by this one while
the database was unreachable).

Claiming is safe with any number of processes on one database. A claim is one short write
transaction that selects due rows (`status = 'pending' and next_attempt_at <= now`, with
`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock serialises claimers), counts the
attempt and pushes `next_attempt_at` forward by a lease (timeout + 30 s). The HTTP request is made
outside any transaction; its outcome is written only if the row still carries our lease. So a
process that dies mid-request leaves its deliveries to be claimed again when the lease ends, and
two processes never send the same attempt.

Delivery is at least once: a receiver may see a delivery twice (a lost response, a lease that ran
out) and should use `X-PromptKeeper-Delivery` to drop duplicates.

Tenants share a process's slots (`webhook_concurrency`) but no project holds more than
`webhook_project_concurrency` of them, and each claim serves every waiting project's oldest
delivery before any project's second: a project whose receivers hang delays its own deliveries,
and another project waits at most for one free slot. Every attempt ends within `webhook_timeout`.

What the receiver answers stays out of the delivery log beyond its status code: the log shows the
status and its standard reason phrase, never the body, the server's reason text or a `Location`
(a receiver may be an internal service, and the log would hand its answers to whoever can read
the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import anyio
import anyio.to_thread
import httpx
from sqlalchemy import CursorResult, case, func, literal, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from promptkeeper.audit.models import Webhook, WebhookDelivery
from promptkeeper.audit.service import DeliveriesQueued, record
from promptkeeper.audit.signing import encode_body, request_headers, retry_delay
from promptkeeper.audit.transport import (
    EgressRefused,
    Resolver,
    scrub_error,
    split_userinfo,
    status_text,
    webhook_client,
)
from promptkeeper.config import Settings
from promptkeeper.core.actor import Actor
from promptkeeper.core.egress import EgressPolicy
from promptkeeper.core.secrets import SecretKeyError
from promptkeeper.core.urls import where
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database

log = logging.getLogger(__name__)

LEASE_MARGIN = 30.0
_DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
_ERROR_SNIPPET = 200  # characters of an error in the log lines


# --- the dispatcher ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt; `lease` identifies the claim when its outcome is written."""

    delivery_id: int
    webhook_id: int
    project_id: int
    url: str
    secret: str
    event: str
    payload: dict[str, Any]
    attempts: int
    lease: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str
    #: No retry: the egress policy refused the receiver, and would again.
    final: bool = False


class Dispatcher:
    """Claims due deliveries and POSTs them; one per server process (`start`/`stop` in the lifespan)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        poll_interval: float = 1.0,
        concurrency: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._db = db
        self._timeout = settings.webhook_timeout
        self._max_attempts = settings.webhook_max_attempts
        self._retry_base = settings.webhook_retry_base
        self._lease = timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN)
        self._poll_interval = poll_interval
        self._concurrency = concurrency if concurrency is not None else settings.webhook_concurrency
        self._project_concurrency = settings.webhook_project_concurrency
        self._policy = EgressPolicy.from_settings(settings)
        self._transport = transport
        self._resolver = resolver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._scope: anyio.CancelScope | None = None
        #: Claimed attempts whose outcome is not written yet, by delivery id.
        self._inflight: dict[int, Job] = {}
        self._client: httpx.AsyncClient | None = None
        #: Counters for operators and tests.
        self.sent = 0
        self.failed_attempts = 0

    # -- waking up --------------------------------------------------------------------------------

    def on_commit(self, event: object) -> None:
        """Post-commit listener; runs in whatever thread committed."""
        if isinstance(event, DeliveriesQueued):
            self.wake()

    def wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._client = webhook_client(
            timeout=self._timeout, policy=self._policy, resolver=self._resolver, transport=self._transport
        )
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._main(ready), name="promptkeeper-webhooks")
        await ready.wait()

    async def stop(self) -> None:
        """Stop claiming; attempts in flight are abandoned and handed back for another try.

        Cancellation goes through an anyio cancel scope, not `Task.cancel()`: that lets a database
        call running in a worker thread finish first (it is shielded), so no connection is still
        checked out when the caller disposes of the engine.
        """
        if self._task is None:
            return
        if self._scope is not None:
            self._scope.cancel()
        try:
            await self._task
        except Exception:
            log.exception("webhook dispatcher failed while stopping")
        self._task = None
        self._loop = None
        abandoned = list(self._inflight.values())
        self._inflight.clear()
        if abandoned:
            try:
                await anyio.to_thread.run_sync(self._release, abandoned)
            except Exception as exc:  # the lease runs out and another claim retries them anyway
                log.debug("could not hand back %d webhook deliveries: %s", len(abandoned), exc)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _main(self, ready: asyncio.Event) -> None:
        async with anyio.create_task_group() as group:
            self._scope = group.cancel_scope
            ready.set()
            while True:
                self._wake.clear()
                free = self._concurrency - len(self._inflight)
                if free > 0:
                    busy = Counter(job.project_id for job in self._inflight.values())
                    for job in await self._claim(free, busy):
                        self._inflight[job.delivery_id] = job  # before any await: see `stop`
                        group.start_soon(self._attempt, job, name=f"webhook-delivery-{job.delivery_id}")
                with anyio.move_on_after(self._poll_interval):
                    await self._wake.wait()

    async def _claim(self, limit: int, busy: Mapping[int, int]) -> list[Job]:
        try:
            return await anyio.to_thread.run_sync(self.claim, limit, busy)
        except _DATABASE_ERRORS as exc:
            log.debug("could not claim webhook deliveries: %s", exc)
        except Exception:  # the loop must survive anything
            log.exception("could not claim webhook deliveries")
        return []

    # -- one attempt ------------------------------------------------------------------------------

    async def _attempt(self, job: Job) -> None:
        """Send, then write the outcome; a cancellation while sending leaves the job to `stop`."""
        outcome = await self.send(job)
        if outcome.ok:
            self.sent += 1
        else:
            self.failed_attempts += 1
        try:
            delay = await anyio.to_thread.run_sync(self.finish, job, outcome)
        except Exception as exc:  # the lease runs out and the attempt is made again
            log.warning("could not record webhook delivery %d: %s", job.delivery_id, exc)
            delay = None
        self._inflight.pop(job.delivery_id, None)
        self._wake.set()  # a slot is free
        if delay is not None and delay < self._poll_interval and self._loop is not None:
            self._loop.call_later(delay, self._wake.set)

    async def send(self, job: Job) -> Outcome:
        """POST one delivery; never raises for anything the receiver or the network does."""
        assert self._client is not None, "dispatcher not started"
        body = encode_body(job.payload, job.delivery_id)
        headers = request_headers(
            secret=job.secret,
            event=job.event,
            delivery_id=job.delivery_id,
            timestamp=int(time.time()),
            body=body,
        )
        url, auth = split_userinfo(job.url)
        try:
            with anyio.fail_after(self._timeout):  # httpx's timeout is per read, not per request
                async with self._client.stream(
                    "POST", url, content=body, headers=headers, auth=auth
                ) as response:
                    code = response.status_code
                    return Outcome(ok=200 <= code < 300, status_code=code, error=status_text(code))
        except TimeoutError:
            return Outcome(ok=False, status_code=None, error=f"timed out after {self._timeout:g} s")
        except EgressRefused as exc:
            error = f"refused by the egress policy: {exc}"
            return Outcome(ok=False, status_code=None, error=scrub_error(error, job.url), final=True)
        except Exception as exc:  # e.g. httpx.InvalidURL: a failed attempt, never a dead dispatcher
            error = scrub_error(f"{type(exc).__name__}: {exc}", job.url)
            if not isinstance(exc, httpx.HTTPError):
                log.debug("webhook delivery %d raised %s", job.delivery_id, error)
            return Outcome(ok=False, status_code=None, error=error)

    # -- database (blocking: called in a worker thread) -------------------------------------------

    def claim(self, limit: int, busy: Mapping[int, int] | None = None) -> list[Job]:
        """Take up to `limit` due deliveries, counting the attempt and leasing them.

        `busy` counts this process's attempts in flight by project: a project at its share gets
        nothing, and the others' oldest deliveries come first, one project after another.
        """
        now = utcnow()
        lease = now + self._lease
        share = self._project_concurrency
        busy = busy or {}
        full = [project for project, count in busy.items() if count >= share]
        due = [WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now]
        if full:
            due.append(WebhookDelivery.project_id.not_in(full))
        with self._db.read_connection() as connection:
            # Most polls find nothing: look without a write transaction (on SQLite, the write lock).
            if connection.execute(select(WebhookDelivery.id).where(*due).limit(1)).first() is None:
                return []
        with self._db.write_session() as session:
            query = select(WebhookDelivery).where(
                WebhookDelivery.id.in_(_fair_pick(due, busy, share, limit)), *due
            )
            if self._db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            if not rows:
                return []
            hook_ids = {row.webhook_id for row in rows}
            hooks = {h.id: h for h in session.scalars(select(Webhook).where(Webhook.id.in_(hook_ids)))}
            jobs = []
            for row in rows:
                hook = hooks.get(row.webhook_id)
                if hook is None or not hook.active:
                    # Inactive webhooks receive nothing; redeliver after activating it again.
                    row.status = "failed"
                    row.last_error = "webhook is inactive"
                    continue
                try:
                    secret = self._db.secrets.open(hook.secret)
                except SecretKeyError as exc:  # a wrong key on this instance: say so, send nothing
                    log.error("webhook %s: %s", hook.id, exc)
                    row.status = "failed"
                    row.last_error = str(exc)
                    continue
                row.attempts += 1
                row.next_attempt_at = lease
                jobs.append(
                    Job(
                        delivery_id=row.id,
                        webhook_id=hook.id,
                        project_id=row.project_id,
                        url=hook.url,
                        secret=secret,
                        event=row.event,
                        payload=dict(row.payload),
                        attempts=row.attempts,
                        lease=lease,
                    )
                )
            session.commit()
        return jobs

    def finish(self, job: Job, outcome: Outcome) -> float | None:
        """Write an attempt's outcome; returns the delay before the next attempt, if there is one."""
        now = utcnow()
        values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
        delay: float | None = None
        if outcome.ok:
            values.update(status="delivered", delivered_at=now)
        elif job.attempts >= self._max_attempts or outcome.status_code == 410 or outcome.final:
            values.update(status="failed")
        else:
            delay = retry_delay(job.attempts, self._retry_base)
            values.update(next_attempt_at=now + timedelta(seconds=delay))
        with self._db.write_session() as session:
            claimed = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == job.delivery_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.attempts == job.attempts,
                    WebhookDelivery.next_attempt_at == job.lease,
                )
                .values(**values)
            )
            if cast(CursorResult[Any], claimed).rowcount == 0:
                # Redelivered, or our lease ran out and another claim took over: theirs is the record.
                return None
            if outcome.status_code == 410:
                self._deactivate(session, job)
            session.commit()
        if not outcome.ok:
            next_step = "giving up" if delay is None else f"retrying in {delay:g} s"
            log.warning(
                "webhook %d delivery %d (%s) to %s: attempt %d/%d failed: %s; %s",
                job.webhook_id,
                job.delivery_id,
                job.event,
                where(job.url),
                job.attempts,
                self._max_attempts,
                outcome.error[:_ERROR_SNIPPET],
                next_step,
            )
        return delay

    def _deactivate(self, session: Session, job: Job) -> None:
        """410 Gone: the receiver asks us to stop; the webhook is switched off and that is audited."""
        hook = session.get(Webhook, job.webhook_id)
        if hook is None or not hook.active:
            return
        hook.active = False
        session.flush()
        record(
            session=session,
            actor=Actor.system("webhooks", job.project_id),
            action="webhook.deactivated",
            target_type="webhook",
            target=str(hook.id),
            before={"active": True},
            after={"active": False, "reason": "the receiver answered 410 Gone"},
            severity="warning",
        )

    def _release(self, jobs: list[Job]) -> None:
        """Hand abandoned attempts back: due now, and the interrupted attempt not counted."""
        now = utcnow()
        with self._db.write_session() as session:
            for job in jobs:
                session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == job.delivery_id,
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at == job.lease,
                    )
                    .values(next_attempt_at=now, attempts=WebhookDelivery.attempts - 1)
                )
            session.commit()


def _fair_pick(due: list[Any], busy: Mapping[int, int], share: int, limit: int) -> Any:
    """The ids to claim: per project, its oldest due deliveries up to its free share; across
    projects, every project's first before any project's second (a window function: SQLite and
    PostgreSQL both have them; FOR UPDATE goes on the outer query)."""
    rank = func.row_number().over(
        partition_by=WebhookDelivery.project_id,
        order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id),
    )
    ranked = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.project_id,
            WebhookDelivery.next_attempt_at,
            rank.label("rank"),
        )
        .where(*due)
        .subquery()
    )
    rooms = {project: share - count for project, count in busy.items() if 0 < count < share}
    room = case(rooms, value=ranked.c.project_id, else_=share) if rooms else literal(share)
    return (
        select(ranked.c.id)
        .where(ranked.c.rank <= room)
        .order_by(ranked.c.rank, ranked.c.next_attempt_at, ranked.c.id)
        .limit(limit)
    )
