"""glibc malloc settings for a long-running, threaded Python process (`serve`, `worker`).

glibc gives each thread of the pool its own arena (up to 8 per core) and keeps freed memory in
them, fragmented: under event ingestion a server's RSS crept up while Python's own allocations
stayed flat (tracemalloc). Two arenas and returning freed memory past 128 KiB held it flat
(docs/benchmarks.md). The operator's own `MALLOC_*` environment wins: nothing is changed when one
is set. Other C libraries (musl, macOS): nothing to do."""

from __future__ import annotations

import ctypes
import ctypes.util
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
