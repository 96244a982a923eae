"""The allocator settings `serve` and `worker` apply: on glibc they take, an operator's MALLOC_* wins."""

from __future__ import annotations

import ctypes.util
import platform
import subprocess
import sys

import pytest

PROBE = "from promptkeeper import allocator; print(allocator.tune())"


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's mallopt")
def test_tune_applies_on_glibc_and_yields_to_the_operator() -> None:
    assert ctypes.util.find_library("c") is not None
    plain = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert plain.stdout.strip() == "True"
    env = {"MALLOC_ARENA_MAX": "4", "PATH": "/usr/bin:/bin"}
    chosen = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
    )
    assert chosen.stdout.strip() == "False"
