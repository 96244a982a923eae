"""Docs are code: every route, setting and CLI command is documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import typer.main

from promptkeeper.app import create_app
from promptkeeper.cli import app as cli_app
from promptkeeper.config import Settings
from tests.helpers import app_routes

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _routes() -> list[tuple[str, str]]:
    return sorted(app_routes(create_app(Settings(database_url="sqlite://"))))


def test_every_route_is_documented() -> None:
    api = (DOCS / "api.md").read_text()
    missing = [f"{m} {p}" for m, p in _routes() if f"`{m} {p}`" not in api]
    assert not missing, f"undocumented routes in docs/api.md: {missing}"


def test_every_setting_is_documented() -> None:
    operations = (DOCS / "operations.md").read_text()
    missing = [name for name in Settings.model_fields if f"`PROMPTKEEPER_{name.upper()}`" not in operations]
    assert not missing, f"undocumented settings in docs/operations.md: {missing}"


def _commands(group: typer.Typer, prefix: str = "promptkeeper") -> list[str]:
    click_group = typer.main.get_command(group)
    names: list[str] = []

    def walk(command: object, path: str) -> None:
        sub = getattr(command, "commands", None)
        if sub:
            for name, child in sub.items():
                if not getattr(child, "hidden", False):
                    walk(child, f"{path} {name}")
        else:
            names.append(path)

    walk(click_group, prefix)
    return names


def test_every_cli_command_is_documented() -> None:
    cli = (DOCS / "cli.md").read_text()
    commands = _commands(cli_app)
    assert "promptkeeper serve" in commands and "promptkeeper db upgrade" in commands
    missing = [c for c in commands if f"`{c}" not in cli]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"


def test_docs_link_to_existing_files() -> None:
    for page in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#:]+\.md)", text):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_cli_reference_is_generated_from_the_code() -> None:
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "scripts" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (DOCS / "cli-reference.md").read_text()
    assert module.render() == current, "docs/cli-reference.md is stale: run python scripts/cli_reference.py"
    for command in _commands(cli_app):
        assert f"## `{command}`" in current


def test_openapi_documents_the_error_shape_of_every_operation() -> None:
    """Every operation may answer a 4xx or a 503 in our error shape (Langfuse-compatible routes in
    Langfuse's); FastAPI's default 422 schema (`{"detail": [...]}`) is never what we send. Found by
    tests/test_schemathesis.py (undocumented status codes, 422 bodies not matching the schema)."""
    document = create_app(Settings(database_url="sqlite://")).openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    untrue = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in ("/healthz", "/readyz", "/metrics"):
                continue  # no credentials, no parameters: no client error to document
            shape = "LangfuseErrorBody" if path.startswith("/api/public/") else "ErrorBody"
            if path.startswith("/otlp/"):
                shape = "OtlpStatus"  # OTLP/HTTP answers errors as google.rpc.Status (docs/opentelemetry.md)
            for status in ("4XX", "503"):
                schema = operation["responses"].get(status, {}).get("content", {}).get("application/json")
                if schema != {"schema": {"$ref": f"#/components/schemas/{shape}"}}:
                    untrue.append(f"{method.upper()} {path} {status}")
    assert not untrue, untrue


PACKAGE = Path(__file__).resolve().parent.parent / "promptkeeper"


def _contract_layers() -> list[str]:
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    (layers,) = [c for c in pyproject["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    return [str(layer) for layer in layers["layers"]]


def test_architecture_names_every_package() -> None:
    """docs/architecture.md is redrawn from the code: a package or module it omits is a failure."""
    architecture = (DOCS / "architecture.md").read_text()
    names = [
        f"{path.relative_to(PACKAGE).as_posix()}/" if path.is_dir() else path.name
        for path in sorted(PACKAGE.iterdir())
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name != "__init__.py")
    ]
    names += [
        f"{path.parent.relative_to(PACKAGE).as_posix()}/"
        for path in sorted(PACKAGE.glob("*/*/__init__.py"))
        if "migrations" not in path.parts
    ]
    missing = [name for name in names if f"`{name}`" not in architecture]
    assert not missing, f"packages and modules missing from docs/architecture.md: {missing}"


def test_architecture_states_the_enforced_layer_order() -> None:
    """The layer order written in docs/architecture.md is the import-linter contract's, verbatim."""
    architecture = (DOCS / "architecture.md").read_text()
    match = re.search(r"^## Layers.*?^```text\n(.*?)^```", architecture, re.S | re.M)
    assert match, "docs/architecture.md needs a '## Layers' section with a ```text block of the layers"
    written = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    assert [line for line in written if line] == _contract_layers()
