"""The resolution cache's rules, with a counting loader (the database paths are covered elsewhere)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from promptkeeper.runtime.resolver import Key, Payload, Resolver

KEY: Key = (1, "p", "production")


def payload(revision: int, version: int | None = None) -> Payload:
    body = f'{{"revision": {revision}}}'.encode()
    return Payload(
        body=body, etag=f'"{revision}"', revision=revision, version=version or revision, content={}
    )


class Loader:
    def __init__(self, revision: int = 1, delay: float = 0.0) -> None:
        self.revision = revision
        self.delay = delay
        self.calls = 0
        self.fail = False
        self.lock = threading.Lock()
        self.read = threading.Event()  # set once a load has read the revision it will return

    def __call__(self, key: Key) -> Payload:
        with self.lock:
            self.calls += 1
        revision = self.revision  # what the database holds when the query runs
        self.read.set()
        time.sleep(self.delay)
        if self.fail:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return payload(revision)


def test_concurrent_misses_share_one_load() -> None:
    loader = Loader(delay=0.05)
    resolver = Resolver(loader, ttl=60)

    async def scenario() -> None:
        entries = await asyncio.gather(*(resolver.get(*KEY) for _ in range(50)))
        assert {e.payload.revision for e in entries} == {1}
        assert loader.calls == 1
        assert (await resolver.get(*KEY)).payload.revision == 1
        assert loader.calls == 1 and resolver.hits == 1

    asyncio.run(scenario())


def test_expired_entries_reload_and_errors_propagate() -> None:
    loader = Loader()
    resolver = Resolver(loader, ttl=0.01)

    async def scenario() -> None:
        await resolver.get(*KEY)
        await asyncio.sleep(0.02)
        loader.revision = 2
        assert (await resolver.get(*KEY)).payload.revision == 2
        assert loader.calls == 2
        loader.fail = True
        await asyncio.sleep(0.02)
        stale = await resolver.get(*KEY)  # stale-if-error
        assert stale.stale and stale.payload.revision == 2 and resolver.stale_served == 1
        with pytest.raises(OperationalError):
            await resolver.get(2, "other", "production")  # nothing cached: the error surfaces

    asyncio.run(scenario())


def test_invalidation_floor_rejects_a_load_that_raced_with_it() -> None:
    loader = Loader(revision=4, delay=0.05)
    resolver = Resolver(loader, ttl=60)

    async def scenario() -> None:
        task = asyncio.create_task(resolver.get(*KEY))
        # the load of revision 4 is in flight (it has read the row: a busy machine may take a
        # while to start its thread, so wait for that rather than for a fixed 10 ms) ...
        await asyncio.to_thread(loader.read.wait, 10)
        resolver.invalidate(*KEY, revision=5)  # ... when revision 5 is committed
        loader.revision = 5
        after = asyncio.create_task(resolver.get(*KEY))  # asked after the change: must not join
        entry = await task
        assert entry.payload.revision == 4  # the caller that asked before the change gets what was read
        assert (await after).payload.revision == 5
        assert loader.calls == 2
        assert resolver.size == 1 and (await resolver.get(*KEY)).payload.revision == 5

    asyncio.run(scenario())


def test_invalidate_only_drops_older_entries_and_expire_all_keeps_stale_copies() -> None:
    loader = Loader(revision=3)
    resolver = Resolver(loader, ttl=60)

    async def scenario() -> None:
        await resolver.get(*KEY)
        assert resolver.invalidate(*KEY, revision=3) is False  # same revision: nothing to drop
        assert resolver.invalidate(*KEY, revision=2) is False
        assert resolver.size == 1
        resolver.expire_all()
        loader.fail = True
        entry = await resolver.get(*KEY)
        assert entry.stale and entry.payload.revision == 3
        assert resolver.invalidate(*KEY, revision=4) is True
        with pytest.raises(OperationalError):
            await resolver.get(*KEY)  # a known-outdated copy is never served, even stale

    asyncio.run(scenario())
