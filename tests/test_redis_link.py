"""The Redis link against a real Redis: revision-guarded L2 writes, tombstones, outages."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest

from promptkeeper.runtime.redis_link import RedisLink
from promptkeeper.runtime.release_changes import ReleaseChanged
from promptkeeper.runtime.resolver import Key, Payload
from tests.processes import free_port

KEY: Key = (1, "folder/p", "production")


def payload(revision: int) -> Payload:
    content = {"type": "text", "template": f"r{revision}"}
    body = json.dumps({"content": content}).encode()
    return Payload(body=body, etag=f'"e{revision}"', revision=revision, version=revision, content=content)


def change(revision: int) -> ReleaseChanged:
    return ReleaseChanged(
        project_id=1, prompt="folder/p", environment="production", revision=revision, version=1, seq=1
    )


def test_l2_keeps_the_newest_revision(redis_url: str) -> None:
    link = RedisLink(redis_url, l2_ttl=30, prefix=f"pktest-{uuid.uuid4().hex[:8]}")

    async def scenario() -> None:
        assert await link.get(KEY) is None
        await link.put(KEY, payload(3))
        got = await link.get(KEY)
        assert got is not None and (got.revision, got.etag) == (3, '"e3"')
        assert got.content == {"type": "text", "template": "r3"}
        await link.put(KEY, payload(2))  # an older load arriving late does not win
        assert (await link.get(KEY)).revision == 3  # type: ignore[union-attr]
        await asyncio.to_thread(link.announce, change(4))  # a change: tombstone at revision 4
        assert await link.get(KEY) is None
        await link.put(KEY, payload(3))  # a reader that loaded revision 3 before the change
        assert await link.get(KEY) is None
        await link.put(KEY, payload(4))
        assert (await link.get(KEY)).revision == 4  # type: ignore[union-attr]
        await link.close()

    asyncio.run(scenario())


def test_pubsub_delivers_announcements(redis_url: str) -> None:
    prefix = f"pktest-{uuid.uuid4().hex[:8]}"
    publisher = RedisLink(redis_url, l2_ttl=30, prefix=prefix)
    subscriber = RedisLink(redis_url, l2_ttl=30, prefix=prefix)
    received: list[ReleaseChanged] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(subscriber.listen(received.append, lambda: None, stop=stop))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(publisher.announce, change(7))
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await publisher.close()
        await subscriber.close()

    asyncio.run(scenario())
    assert received == [change(7)]


def test_unreachable_redis_fails_fast_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", l2_ttl=30)

    async def scenario() -> None:
        started = time.monotonic()
        for _ in range(50):
            assert await link.get(KEY) is None
            await link.put(KEY, payload(1))
            link.announce(change(1))
        assert time.monotonic() - started < 2  # a down Redis is skipped, not waited for
        assert link.up is False
        await link.close()

    with caplog.at_level(logging.WARNING, logger="promptkeeper.runtime.redis_link"):
        asyncio.run(scenario())
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert len(caplog.records) == 1 and "Redis unavailable" in caplog.records[0].message
