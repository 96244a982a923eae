#!/usr/bin/env python3
"""Import every prompt, version and label from Langfuse into PromptKeeper.

Reads Langfuse's public API (or a JSON export: a list of prompt objects as the API returns them)
and writes through PromptKeeper's Langfuse-compatible API, version by version in order, so version
numbers match. Labels become deployments of the environments with the same names; a label with no
such environment is reported and skipped (create it first, or pass --create-environments with an
admin key). Prompts that already exist in PromptKeeper are skipped, so a second run does nothing.

    python scripts/langfuse_import.py \\
        --source https://cloud.langfuse.com --public-key pk-lf-... --secret-key sk-lf-... \\
        --target http://127.0.0.1:8700 --target-key pk_...
    python scripts/langfuse_import.py --from-file prompts.json --target ... --target-key ...

Exit code: 0 when everything was imported (or skipped as present), 1 when anything failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

PAGE = 100


def _encode(name: str) -> str:
    return quote(name, safe="")


class Source:
    """Langfuse's public prompt API."""

    def __init__(self, url: str, public_key: str, secret_key: str) -> None:
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Basic {token}"}, timeout=30
        )

    def prompts(self) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            response = self.http.get("/api/public/v2/prompts", params={"page": page, "limit": PAGE})
            response.raise_for_status()
            body = response.json()
            for meta in body["data"]:
                for version in sorted(meta["versions"]):
                    got = self.http.get(
                        f"/api/public/v2/prompts/{_encode(meta['name'])}",
                        params={"version": version, "resolve": "false"},  # keep composition tags
                    )
                    got.raise_for_status()
                    yield got.json()
            if page >= body["meta"]["totalPages"]:
                return
            page += 1


def _from_file(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of Langfuse prompt objects")
    return sorted(data, key=lambda p: (p["name"], p["version"]))


class Target:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.environments = {e["name"] for e in self._get("/v1/environments")}

    def _get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def exists(self, name: str) -> bool:
        return self.http.get(f"/v1/prompts/{_encode(name)}").status_code == 200

    def create_environment(self, name: str) -> None:
        response = self.http.post(
            "/v1/environments", json={"name": name, "description": "imported Langfuse label"}
        )
        if response.status_code != 201:
            raise RuntimeError(f"cannot create environment '{name}': {response.text[:200]}")
        self.environments.add(name)

    def create(self, prompt: dict[str, Any]) -> None:
        body = {key: prompt.get(key) for key in ("name", "type", "prompt", "config", "tags", "commitMessage")}
        response = self.http.post("/api/public/v2/prompts", json={**body, "labels": []})
        if response.status_code != 201:
            raise RuntimeError(
                f"{prompt['name']} v{prompt['version']}: {response.json().get('message', response.text)}"
            )
        created = response.json()["version"]
        if created != prompt["version"]:
            raise RuntimeError(f"{prompt['name']}: created version {created}, expected {prompt['version']}")

    def label(self, name: str, version: int, labels: list[str]) -> None:
        response = self.http.patch(
            f"/api/public/v2/prompts/{_encode(name)}/versions/{version}", json={"newLabels": labels}
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"{name} v{version} labels {labels}: {response.json().get('message', response.text)}"
            )


_TAG = re.compile(r"@@@(?:langfusePrompt|prompt):[^@\n]*?name=\s*([^|@\n]+?)\s*(?:\||@@@)")


def _included_first(prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompts grouped by name, a prompt's versions before those of a prompt that includes it
    (`@@@langfusePrompt:name=…@@@`), so each reference and its label exist when it is created."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for prompt in prompts:
        groups.setdefault(prompt["name"], []).append(prompt)
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()

    def place(name: str, path: tuple[str, ...]) -> None:
        if name in placed or name in path:
            return
        for version in groups[name]:
            text = json.dumps(version.get("prompt", ""))
            for included in _TAG.findall(text):
                if included in groups:
                    place(included, (*path, name))
        placed.add(name)
        ordered.extend(groups[name])

    for name in groups:
        place(name, ())
    return ordered


def _apply_labels(
    labels_of: dict[str, list[tuple[int, list[str]]]],
    skipped: set[str],
    target: Target,
    *,
    create_environments: bool,
    dry_run: bool,
) -> int:
    failures = 0
    for name, versions in labels_of.items():
        if name in skipped and not dry_run:
            continue
        for version, labels in versions:
            usable = []
            for label in labels:
                if label not in target.environments:
                    if create_environments and not dry_run:
                        target.create_environment(label)
                    elif not create_environments:
                        print(
                            f"warning: {name} v{version}: label '{label}' is not an environment; skipped",
                            file=sys.stderr,
                        )
                        continue
                usable.append(label)
            if usable:
                print(f"{'would label' if dry_run else 'label'} {name} v{version}: {', '.join(usable)}")
                if not dry_run:
                    try:
                        target.label(name, version, usable)
                    except RuntimeError as exc:
                        print(f"error: {exc}", file=sys.stderr)
                        failures += 1
    labels_of.clear()
    return failures


def run(
    source: list[dict[str, Any]] | Iterator[dict[str, Any]],
    target: Target,
    *,
    create_environments: bool,
    dry_run: bool,
) -> int:
    failures = 0
    skipped: set[str] = set()
    done: set[str] = set()
    failed: set[str] = set()
    spellings: dict[str, str] = {}  # PromptKeeper's names are unique regardless of case; Langfuse's are not
    labels_of: dict[str, list[tuple[int, list[str]]]] = {}
    for prompt in _included_first(list(source)):
        name = prompt["name"]
        if (
            labels_of and name not in labels_of
        ):  # a prompt's labels before the next prompt, which may include it
            failures += _apply_labels(
                labels_of, skipped, target, create_environments=create_environments, dry_run=dry_run
            )
        if name in skipped:
            continue
        first = spellings.setdefault(name.lower(), name)
        if first != name:
            print(
                f"error: {name}: the export also has '{first}', and PromptKeeper's names are unique "
                f"regardless of case; rename one of them in Langfuse and import again",
                file=sys.stderr,
            )
            failures += 1
            failed.add(name)
            skipped.add(name)
            continue
        if name not in done and target.exists(name):
            print(f"skip {name}: already in PromptKeeper")
            skipped.add(name)
            continue
        done.add(name)
        wanted = [label for label in prompt.get("labels", []) if label != "latest"]
        labels_of.setdefault(name, []).append((prompt["version"], wanted))
        verb = "would import" if dry_run else "import"
        print(f"{verb} {name} v{prompt['version']} ({prompt.get('type', 'text')})")
        if dry_run:
            continue
        try:
            target.create(prompt)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            failed.add(name)
            skipped.add(name)
    failures += _apply_labels(
        labels_of, skipped, target, create_environments=create_environments, dry_run=dry_run
    )
    verb = "to import" if dry_run else "imported"
    print(
        f"{len(done - failed)} prompt(s) {verb}, {len(skipped - done - failed)} skipped, {failures} error(s)"
    )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", help="Langfuse host URL")
    parser.add_argument("--public-key", help="Langfuse public key")
    parser.add_argument("--secret-key", help="Langfuse secret key")
    parser.add_argument("--from-file", type=Path, help="a JSON export: a list of Langfuse prompt objects")
    parser.add_argument("--target", required=True, help="PromptKeeper URL")
    parser.add_argument(
        "--target-key", required=True, help="PromptKeeper API key (editor; admin for --create-environments)"
    )
    parser.add_argument(
        "--create-environments", action="store_true", help="create an environment per unknown label"
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be imported, change nothing")
    args = parser.parse_args(argv)
    if args.from_file is None and not (args.source and args.public_key and args.secret_key):
        parser.error("give --from-file, or --source with --public-key and --secret-key")
    clients: list[httpx.Client] = []
    try:
        if args.from_file is not None:
            source: Any = _from_file(args.from_file)
        else:
            reader = Source(args.source, args.public_key, args.secret_key)
            clients.append(reader.http)
            source = reader.prompts()
        target = Target(args.target, args.target_key)
        clients.append(target.http)
        return run(
            source,
            target,
            create_environments=args.create_environments,
            dry_run=args.dry_run,
        )
    except (httpx.HTTPError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for client in clients:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
