"""The sync SDK client is generated from the async one (scripts/unasync.py), and the two cannot drift.

`client/_async.py` is the one source; `client/_sync.py` is what the script makes of it. A hand edit
of `_sync.py`, or an edit of `_async.py` without regenerating, fails here (and in `--check`), so a
fix made in one client reaches the other.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"
CLIENT = Path("promptkeeper") / "client"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sync_client_is_exactly_what_the_async_client_generates() -> None:
    script = _script()
    expected = script.unasync(script.SOURCE.read_text())
    actual = script.TARGET.read_text()
    assert expected == actual, (
        "client/_sync.py has drifted from client/_async.py: edit _async.py and run "
        "python scripts/unasync.py\n" + script.drift(expected, actual)
    )


def _copy_of_the_tree(tmp_path: Path) -> Path:
    """The script and both client modules in a scratch tree of the same layout, to edit freely."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "unasync.py")
    (tmp_path / CLIENT).mkdir(parents=True)
    for name in ("_async.py", "_sync.py"):
        shutil.copy(ROOT / CLIENT / name, tmp_path / CLIENT / name)
    return tmp_path


def _run(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(tree / "scripts" / "unasync.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_check_fails_on_a_hand_edit_of_the_sync_client_and_regenerating_repairs_it(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    assert _run(tree, "--check").returncode == 0
    sync = tree / CLIENT / "_sync.py"
    original = sync.read_text()
    edited = original.replace("retries: int = 2,", "retries: int = 3,", 1)
    assert edited != original
    sync.write_text(edited)

    check = _run(tree, "--check")

    assert check.returncode == 1
    assert "-        retries: int = 2,\n+        retries: int = 3," in check.stdout
    assert "differs from what promptkeeper/client/_async.py generates" in check.stderr
    assert _run(tree).returncode == 0
    assert sync.read_text() == original
    assert _run(tree, "--check").returncode == 0


def test_check_fails_when_the_async_client_changes_and_the_sync_one_is_not_regenerated(
    tmp_path: Path,
) -> None:
    tree = _copy_of_the_tree(tmp_path)
    source = tree / CLIENT / "_async.py"
    source.write_text(source.read_text().replace("cache_ttl: float = 60.0,", "cache_ttl: float = 30.0,", 1))

    check = _run(tree, "--check")

    assert check.returncode == 1
    assert "+        cache_ttl: float = 60.0," in check.stdout


def test_a_substitution_that_matches_nothing_is_refused() -> None:
    script = _script()
    with pytest.raises(script.StaleSubstitution, match=r"aiter_lines"):
        script.unasync(script.SOURCE.read_text().replace("aiter_lines", "aiter_text"))


def test_the_generated_client_keeps_no_async_token() -> None:
    generated = _script().TARGET.read_text()
    for token in ("async ", "await ", "AsyncClient", "aclose", "asyncio"):
        assert token not in generated, token
