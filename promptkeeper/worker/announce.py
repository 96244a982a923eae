"""Release changes a worker commits, announced on Redis as a server announces its own."""

from __future__ import annotations

from promptkeeper.runtime.redis_link import RedisLink
from promptkeeper.runtime.release_changes import ReleaseChanged


class Announcer:
    """Post-commit listener for processes without a runtime (`promptkeeper worker`): release
    changes they commit (automatic rollbacks, bandit rounds) are announced on Redis at once, as a
    server announces its own, instead of waiting for the servers' periodic check."""

    def __init__(self, url: str, *, l2_ttl: float, prefix: str) -> None:
        self.link = RedisLink(url, l2_ttl=l2_ttl, prefix=prefix)
        self.announced = 0

    def on_commit(self, event: object) -> None:
        if isinstance(event, ReleaseChanged):
            self.link.announce(event)
            self.announced += 1

    async def close(self) -> None:
        await self.link.close()
