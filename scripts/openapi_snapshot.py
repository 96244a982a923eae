#!/usr/bin/env python3
"""Write tests/data/openapi.json and tests/data/sdk_surface.txt: the REST and SDK surfaces as the
code defines them.

`tests/test_openapi_snapshot.py` rebuilds both and fails when they differ, so a refactoring that
changes a public surface by accident is caught, and one that changes it on purpose shows the change
in review: run `python scripts/openapi_snapshot.py` after changing a route, a schema or the SDK.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPENAPI = ROOT / "tests" / "data" / "openapi.json"
SDK_SURFACE = ROOT / "tests" / "data" / "sdk_surface.txt"


def openapi_document() -> str:
    from promptkeeper.app import create_app
    from promptkeeper.config import Settings

    document: dict[str, Any] = create_app(Settings(database_url="sqlite://")).openapi()
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def sdk_surface() -> str:
    """Every public name of the SDK with its signature: methods, properties and their parameters."""
    import promptkeeper.client as sdk

    lines: list[str] = []
    for name in sorted(sdk.__all__):
        obj = getattr(sdk, name)
        if not inspect.isclass(obj):
            lines.append(f"{name}{inspect.signature(obj)}")
            continue
        # Private helper classes of the SDK may be rearranged; what a caller can catch or name stays.
        bases = ", ".join(
            base.__name__
            for base in obj.__mro__[1:]
            if base is not object
            and not (base.__module__.startswith("promptkeeper.client") and base.__name__ not in sdk.__all__)
        )
        lines.append(f"class {name}({bases})")
        for attr in sorted(dir(obj)):
            if attr.startswith("_") and attr != "__init__":
                continue
            member = inspect.getattr_static(obj, attr)
            if isinstance(member, property):
                lines.append(f"  {attr}: property")
            elif isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(member):
                kind = "async def" if inspect.iscoroutinefunction(getattr(obj, attr)) else "def"
                lines.append(f"  {kind} {attr}{inspect.signature(getattr(obj, attr))}")
            elif not callable(member):
                lines.append(f"  {attr}: {type(member).__name__}")
    return "\n".join(lines) + "\n"


def main() -> None:
    OPENAPI.write_text(openapi_document())
    SDK_SURFACE.write_text(sdk_surface())
    print(f"wrote {OPENAPI.relative_to(ROOT)} and {SDK_SURFACE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
