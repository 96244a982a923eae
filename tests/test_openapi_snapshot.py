"""The public surfaces stay what they were unless a change means to alter them.

The REST API (the OpenAPI document) and the SDK (every public name and signature) are compared with
snapshots in tests/data; the CLI has its own in docs/cli-reference.md (tests/test_docs.py). A
refactoring that moves code must leave all three unchanged.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "openapi_snapshot.py"
HINT = "run python scripts/openapi_snapshot.py if the change is meant, and review the diff"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openapi_snapshot", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_openapi_document_matches_its_snapshot() -> None:
    script = _script()
    assert script.openapi_document() == script.OPENAPI.read_text(), f"the OpenAPI document changed: {HINT}"


def test_the_sdk_surface_matches_its_snapshot() -> None:
    script = _script()
    assert script.sdk_surface() == script.SDK_SURFACE.read_text(), f"the SDK's public surface changed: {HINT}"
