"""glibc malloc and garbage collector settings for a long-running, threaded Python process (`serve`,
`worker`).

glibc gives each thread of the pool its own arena (up to 8 per core) and keeps freed memory in
them, fragmented: under event ingestion a server's RSS crept up while Python's own allocations
stayed flat (tracemalloc). Two arenas and returning freed memory past 128 KiB held it flat
(docs/benchmarks.md). The operator's own `MALLOC_*` environment wins: nothing is changed when one
is set. Other C libraries (musl, macOS): nothing to do."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger("promptkeeper")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
SETTINGS = ((M_ARENA_MAX, 2), (M_TRIM_THRESHOLD, 128 * 1024), (M_MMAP_THRESHOLD, 128 * 1024))


def tune() -> bool:
    """Apply `SETTINGS` with `mallopt` (call before threads start); returns whether it did."""
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = all(mallopt(option, value) == 1 for option, value in SETTINGS)
    if not done:
        log.debug("mallopt refused a setting; the C library's defaults stay")
    return done


#: Allocations (minus frees) between collections of the youngest generation, and the collections of
#: one generation per collection of the next (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 20)


def settle() -> None:
    """Once the application is built, before it serves: freeze what startup made and collect less
    often.

    A server holds some 300,000 objects from startup (modules, routes, mappers) for its whole life,
    and every full collection walked all of them: about 100 ms each at that size, measured. Frozen,
    they are out of the collector's view. A request's own objects (an OTLP batch of 512 spans makes
    thousands of containers) live until its end and are freed by reference counting, so a young
    generation collected every 700 allocations kept walking them for nothing; at 10,000 the
    collector's share of an ingested span fell from 4.5 µs to under 0.1 µs (in-process, measured
    with `gc.callbacks`). Cycles still get collected, only later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
