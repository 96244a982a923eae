"""First start of a server: schema, default project and environments, the admin key."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from promptkeeper.access.models import Project
from promptkeeper.access.service import DEFAULT_PROJECT, ensure_admin_key, ensure_project
from promptkeeper.audit import webhooks
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.db.migrate import ensure_schema
from promptkeeper.prompts.service import create_default_environments

log = logging.getLogger("promptkeeper")


def create_project(*, session: Session, name: str) -> Project:
    """The project called `name`, created with the default environments when missing."""
    project, created = ensure_project(session=session, name=name)
    if created:
        create_default_environments(session=session, project_id=project.id)
    return project


def bootstrap(*, database: Database, settings: Settings) -> str | None:
    """Prepare the database; returns an admin key generated now (to be shown once), else None."""
    ensure_schema(database.engine, auto_migrate=settings.auto_migrate)
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key is not None else None
    for attempt in range(2):  # two instances starting at once on an empty database: one wins
        try:
            with database.write_session() as session:
                project = create_project(session=session, name=DEFAULT_PROJECT)
                secret = ensure_admin_key(session=session, project=project, admin_key=admin_key)
                sealed = webhooks.seal_secrets(session=session, box=database.secrets)
                session.commit()
            if sealed:
                log.warning("encrypted %d webhook secret(s) stored in plain text", sealed)
            return secret
        except IntegrityError:
            if attempt:
                raise
    return None  # pragma: no cover


def write_admin_key(path: Path, secret: str) -> None:
    """Store a generated key for the operator, readable by its owner only (mode 0600)."""
    _write_private(path, secret + "\n")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def remember_local_server(settings: Settings) -> Path:
    """Leave the address of this server beside its admin key file (mode 0600), so that a CLI
    started in the same folder reaches it without flags: the first hour needs no exports."""
    path = settings.local_server_file()
    key_file = None if settings.admin_key is not None else str(settings.admin_key_file.resolve())
    state = {"url": settings.local_url(), "key_file": key_file, "pid": os.getpid()}
    _write_private(path, json.dumps(state) + "\n")
    return path


def forget_local_server(path: Path) -> None:
    """Remove the address when this server stops, unless another server has written its own."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
