"""The few primitives in which `AsyncClient` and `Client` really differ, each in an async and a
sync form of one interface, as httpcore's `_synchronization.py` does.

`_async.py` uses the `Async*` names and `async_sleep`; scripts/unasync.py writes `_sync.py` from it
by dropping that prefix (with `await` and `async` dropped too), so everything the clients share is
written once and only what follows is written twice. The async forms run on the loop of the first
call; the sync forms are safe across threads (the application's and the client's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")

#: How long `Background.stop` waits for each thread: a thread stuck in a callback is left behind
#: (it is a daemon) rather than hanging the application's shutdown.
JOIN_TIMEOUT = 5.0

# -- sleeping --------------------------------------------------------------------------------------


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


# -- locks -----------------------------------------------------------------------------------------

AsyncLock = asyncio.Lock
Lock = threading.Lock


# -- events ----------------------------------------------------------------------------------------


class AsyncEvent:
    """`asyncio.Event` with the timeout `threading.Event.wait` takes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float) -> bool:
        """True when set, False when `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout=timeout)
        except TimeoutError:
            return False
        return True


Event = threading.Event


# -- queues ----------------------------------------------------------------------------------------


class AsyncQueue(Generic[T]):
    """An unbounded FIFO whose `get` gives up after a timeout (None) instead of raising."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue()

    def put_nowait(self, item: T) -> None:
        self._queue.put_nowait(item)

    async def get(self, timeout: float) -> T | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout=timeout)
        except TimeoutError:
            return None


class Queue(Generic[T]):
    """An unbounded FIFO whose `get` gives up after a timeout (None) instead of raising."""

    def __init__(self) -> None:
        self._queue: queue.Queue[T] = queue.Queue()

    def put_nowait(self, item: T) -> None:
        self._queue.put_nowait(item)

    def get(self, timeout: float) -> T | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


# -- background work -------------------------------------------------------------------------------


class AsyncBackground:
    """The client's loops as tasks on the running loop, started once; stopped by cancelling them."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loops: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        if self._tasks:
            return
        for loop in loops:
            name = "promptkeeper-" + loop.__name__.lstrip("_")
            self._tasks.append(asyncio.create_task(loop(), name=name))

    async def stop(self, stream: httpx.Response | None) -> None:
        """Cancel every task (a task reading `stream` is woken by the cancellation) and wait for it."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


class Background:
    """The client's loops as daemon threads, started once by whichever thread comes first; they end
    when the client's stop event is set, and `stop` waits for them."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._started = False
        self._lock = threading.Lock()

    def start(self, loops: list[Callable[[], None]]) -> None:
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            for loop in loops:
                thread = threading.Thread(target=loop, name=f"promptkeeper-{loop.__name__}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, stream: httpx.Response | None) -> None:
        """Wake the thread blocked reading `stream` (shut the socket down under it), then wait for
        every thread; the other loops wake on the events the client set before calling this."""
        _shut_down(stream)
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT)


def _shut_down(response: httpx.Response | None) -> None:
    if response is None:
        return
    network_stream = response.extensions.get("network_stream")
    sock = network_stream.get_extra_info("socket") if network_stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
