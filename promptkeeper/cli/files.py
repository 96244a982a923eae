"""`promptkeeper pull|push|check`: prompts as YAML files in a repository (docs/files.md).

`pull DIR` writes every prompt's head (or an environment's version) as a file; `push DIR` creates
new versions for the files that changed and only those, after checking every file and every
remote head first (a file pulled at v3 refuses to overwrite a remote v4 unless --force), so a
push that cannot go through applies nothing; `check DIR` validates offline, for pre-commit hooks
and CI. Exit codes: 0 done, 1 a problem (one line per file on stderr), 2 bad usage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from promptkeeper import files
from promptkeeper.cli.common import Key, Remote, Url, fail, usage
from promptkeeper.core.composition import CompositionError, references
from promptkeeper.core.content import content_document, content_hash
from promptkeeper.core.fields import path_segment
from promptkeeper.prompts.service import parse_content

Directory = Annotated[Path, typer.Argument(help="The folder of prompt files.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; only errors and the summary.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print a JSON summary.")]


def _normalized(content: dict[str, Any]) -> dict[str, Any]:
    return content_document(parse_content(content))


def pull(
    directory: Directory,
    environment: Annotated[
        str | None, typer.Option("--env", help="Write what this environment serves instead of the head.")
    ] = None,
    url: Url = "",
    key: Key = "",
    quiet: Quiet = False,
) -> None:
    """Write every prompt of the project as DIR/<name>.yaml (the head, or --env's version)."""
    if directory.exists() and not directory.is_dir():
        raise usage(f"{directory}: not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    with Remote(url, key) as remote:
        prompts: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = remote.call("GET", "/v1/prompts", params={"limit": 500, "offset": offset})
            prompts.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        with Progress(disable=quiet, transient=True) as progress:
            task = progress.add_task("pulling", total=len(prompts))
            for prompt in prompts:
                name = prompt["name"]
                number = prompt["latest_version"]
                if environment is not None:
                    release = (prompt.get("environments") or {}).get(environment)
                    if not release:
                        progress.advance(task)
                        continue
                    number = release["version"]
                version = remote.call("GET", f"/v1/prompts/{path_segment(name)}/versions/{number}")
                document = files.to_document(name, version["content"], number, prompt)
                path = files.path_of(directory, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(files.dump(document), encoding="utf-8")
                written += 1
                progress.advance(task)
    typer.echo(f"pulled {written} prompt(s) into {directory}", err=True)


@dataclass
class Change:
    file: files.PromptFile
    kind: str  # create | update | unchanged | metadata
    head: int | None
    summary: str


def _plan(remote: Remote, loaded: list[files.PromptFile], force: bool) -> tuple[list[Change], list[str]]:
    changes: list[Change] = []
    conflicts: list[str] = []
    for file in loaded:
        segment = path_segment(file.name)
        prompt, missing = remote.get_or_missing(f"/v1/prompts/{segment}")
        if missing is not None:
            existing = missing.get("existing")
            if existing:  # names are unique regardless of case: refuse before anything is applied
                conflicts.append(
                    f"{file.path}: the prompt '{existing}' exists and names are unique regardless of "
                    f"case: name the file's prompt '{existing}' (and the file) or choose another name"
                )
            else:
                changes.append(Change(file, "create", None, "new prompt"))
            continue
        head = int(prompt["latest_version"])
        current = remote.call("GET", f"/v1/prompts/{segment}/versions/{head}")["content"]
        same_content = content_hash(_normalized(current)) == content_hash(file.content)
        meta_changed = any(key in file.meta and file.meta[key] != prompt.get(key) for key in files.META)
        if same_content:
            changes.append(Change(file, "metadata" if meta_changed else "unchanged", head, ""))
            continue
        if file.base_version is not None and file.base_version != head and not force:
            conflicts.append(
                f"{file.path}: '{file.name}' is at v{head} remotely but this file was pulled at "
                f"v{file.base_version}: pull and merge, or push --force"
            )
            continue
        changes.append(Change(file, "update", head, _summary(current, file.content)))
    return changes, conflicts


def _included_first(changes: list[Change]) -> list[Change]:
    """Push a prompt before the files that include it (composition), so their references resolve
    when they are saved; otherwise in the files' order. A cycle is left for the server to refuse."""
    by_name = {c.file.name: c for c in changes}
    ordered: list[Change] = []
    placed: set[str] = set()

    def place(change: Change, path: tuple[str, ...]) -> None:
        name = change.file.name
        if name in placed or name in path:
            return
        try:
            included = [r.name for r in references(change.file.content)]
        except CompositionError:  # the server names the problem
            included = []
        for target in included:
            if target in by_name:
                place(by_name[target], (*path, name))
        placed.add(name)
        ordered.append(change)

    for change in changes:
        place(change, ())
    return ordered


def _summary(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Which parts of the content changed, in one line."""
    parts = []
    if before.get("type") != after.get("type"):
        return f"type {before.get('type')} -> {after.get('type')}"
    if before.get("template") != after.get("template"):
        parts.append("template")
    old, new = before.get("messages") or [], after.get("messages") or []
    if old != new:
        changed = sum(1 for a, b in zip(old, new, strict=False) if a != b) + abs(len(old) - len(new))
        parts.append(f"{changed} message(s)")
    for key in ("examples", "config", "response_schema"):
        if (before.get(key) or None) != (after.get(key) or None):
            parts.append(key)
    return ", ".join(parts) or "content"


def push(
    directory: Directory,
    message: Annotated[str, typer.Option("--message", "-m", help="Commit message of the new versions.")] = "",
    deploy: Annotated[
        str | None, typer.Option("--deploy", help="Deploy the new versions to this environment.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite newer remote heads.")] = False,
    url: Url = "",
    key: Key = "",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Create new versions for the files that changed; a second push of the same files does nothing."""
    if not directory.is_dir():
        raise usage(f"{directory}: not a folder")
    loaded, errors = files.load_directory(directory)
    if errors:
        for error in errors:
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1)
    with Remote(url, key) as remote:
        changes, conflicts = _plan(remote, loaded, force)
        if conflicts:
            for conflict in conflicts:
                typer.echo(f"error: {conflict}", err=True)
            raise fail(f"{len(conflicts)} conflict(s): nothing was pushed")
        for change in changes:
            if change.kind != "unchanged" and not as_json:
                typer.echo(
                    f"{change.kind:9} {change.file.name}{': ' + change.summary if change.summary else ''}"
                )
        pushed: dict[str, int] = {}
        if not dry_run:
            active = _included_first([c for c in changes if c.kind != "unchanged"])
            with Progress(disable=quiet or as_json, transient=True) as progress:
                task = progress.add_task("pushing", total=len(active))
                for change in active:
                    number = _apply(remote, change, message)
                    if number is not None:
                        pushed[change.file.name] = number
                    if deploy and number is not None:
                        remote.call(
                            "POST",
                            f"/v1/prompts/{path_segment(change.file.name)}/deployments",
                            json={
                                "environment": deploy,
                                "version": number,
                                "reason": message or "promptkeeper push",
                            },
                        )
                    _record_base(change, number)
                    progress.advance(task)
    counts = {
        kind: sum(1 for c in changes if c.kind == kind)
        for kind in ("create", "update", "metadata", "unchanged")
    }
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, "counts": counts, "versions": pushed}, indent=2))
        return
    verb = "would push" if dry_run else "pushed"
    typer.echo(
        f"{verb}: {counts['create']} new, {counts['update']} changed, {counts['metadata']} metadata only, "
        f"{counts['unchanged']} unchanged"
        + (f"; deployed to {deploy}" if deploy and pushed and not dry_run else ""),
        err=True,
    )


def _apply(remote: Remote, change: Change, message: str) -> int | None:
    file = change.file
    segment = path_segment(file.name)
    if change.kind == "create":
        body = {
            "name": file.name,
            "content": file.content,
            "message": message or "pushed from files",
            **file.meta,
        }
        created = remote.call("POST", "/v1/prompts", json=body)
        return int(created["version"]["number"])
    if file.meta and change.kind in ("metadata", "update"):
        remote.call("PATCH", f"/v1/prompts/{segment}", json=file.meta)
    if change.kind == "metadata":
        return None
    version = remote.call(
        "POST",
        f"/v1/prompts/{segment}/versions",
        json={
            "content": file.content,
            "message": message or "pushed from files",
            "base_version": change.head,
        },
    )
    return int(version["number"])


def _record_base(change: Change, number: int | None) -> None:
    """Write the new version into the file's base_version, so the next push compares against it."""
    if number is None:
        return
    file = change.file
    file.path.write_text(
        files.dump(files.to_document(file.name, file.content, number, file.meta)), encoding="utf-8"
    )


def check(directory: Directory) -> None:
    """Validate every prompt file offline: YAML, fields, templates (with file and line)."""
    if not directory.is_dir():
        raise usage(f"{directory}: not a folder")
    loaded, errors = files.load_directory(directory)
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors:
        raise typer.Exit(code=1)
    typer.echo(f"{len(loaded)} prompt file(s) OK", err=True)


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)
    app.command("push")(push)
    app.command("check")(check)
