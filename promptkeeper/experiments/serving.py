"""Experiments at resolution time: the resolver's loader, unit assignment and sticky bandit units.

The loader adds to a release's payload the experiment running on it (if the experiment's revision
is the release's: a deploy or rollback since then supersedes it) with every variant's body
serialized once, so assigning a unit on the hot path is one hash and a tuple index.

Fixed-weight experiments assign by hashing alone (`core.assignment`, GrowthBook-compatible): no
I/O, and the SDK computes the same answer locally. Bandits move their weights, and hashing under new
weights would move units between variants; so a bandit unit keeps the variant it was first given,
kept in `experiment_assignments` (the database is the shared store; each process keeps the units
it has seen in a bounded in-memory map in front of it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.exc import IntegrityError

from promptkeeper import tracing
from promptkeeper.core.assignment import assign
from promptkeeper.db.engine import Database
from promptkeeper.deployments import releases
from promptkeeper.experiments.models import Assignment, Experiment
from promptkeeper.prompts.models import Environment, Prompt, PromptVersion
from promptkeeper.runtime.resolver import Key, Payload, Split


def _running(column: Any) -> Any:
    """The running experiment of a (project, prompt, environment), selecting `column`."""
    return (
        select(column)
        .join(Prompt, Prompt.id == Experiment.prompt_id)
        .join(Environment, Environment.id == Experiment.environment_id)
        .where(
            Prompt.project_id == bindparam("project_id"),
            Prompt.name == bindparam("name"),
            Environment.name == bindparam("environment"),
            Experiment.status == "running",
        )
    )


_RUNNING = _running(Experiment)
_RUNNING_ID = _running(Experiment.id)


def load_payload(database: Database, key: Key) -> Payload:
    """The resolver's loader: the release, and the experiment running on it.

    The usual case, no experiment, costs two statements on one read connection without a
    transaction; only a running experiment opens a session to load its variants.
    """
    with tracing.span("promptkeeper.resolve.load", **{"promptkeeper.environment": key[2]}):
        return _load_payload(database, key)


def _load_payload(database: Database, key: Key) -> Payload:
    project_id, name, environment = key
    with database.read_connection() as connection:
        resolved = releases.load_resolved(database, key, connection)
        running = connection.execute(
            _RUNNING_ID, {"project_id": project_id, "name": name, "environment": environment}
        ).scalar()
    if running is None:
        return releases.payload_of(resolved)
    with database.session() as session:
        experiment = session.scalar(
            _RUNNING, {"project_id": project_id, "name": name, "environment": environment}
        )
        if experiment is None or experiment.release_revision != resolved.revision:
            return releases.payload_of(resolved)
        numbers = [v["version"] for v in experiment.variants]
        rows = session.execute(
            select(
                PromptVersion.number,
                PromptVersion.content,
                PromptVersion.variables,
                PromptVersion.placeholders,
            )
            .join(Prompt, Prompt.id == PromptVersion.prompt_id)
            .where(
                and_(Prompt.project_id == project_id, Prompt.name == name, PromptVersion.number.in_(numbers))
            )
        ).all()
        versions = {row.number: row for row in rows}
        variants = [dict(v) for v in experiment.variants]
        # Each variant serves its version composed as the control is (includes followed now).
        served = {
            number: releases.composed(
                session,
                replace(
                    resolved,
                    version=row.number,
                    content=row.content,
                    variables=row.variables,
                    placeholders=row.placeholders,
                    includes=(),
                ),
            )
            for number, row in versions.items()
        }
        plan: dict[str, Any] = {
            "id": experiment.id,
            "mode": experiment.mode,
            "seed": experiment.seed,
            "hash_version": experiment.hash_version,
            "coverage": experiment.coverage,
            "variants": [
                {
                    **v,
                    "content": served[v["version"]].content,
                    "variables": served[v["version"]].variables,
                    "placeholders": served[v["version"]].placeholders,
                }
                for v in variants
            ],
        }
    bodies = []
    depends = list(releases.depends_of(resolved))
    for index, variant in enumerate(variants):
        variant_resolved = served[variant["version"]]
        depends.extend(releases.depends_of(variant_resolved))
        assignment = {"experiment_id": experiment.id, "variant": variant["key"], "index": index}
        bodies.append(releases.payload_of(variant_resolved, assignment=assignment))
    outside = releases.payload_of(
        resolved, assignment={"experiment_id": experiment.id, "variant": None, "index": None}
    )
    base = releases.payload_of(resolved, experiment=plan)
    split = Split(
        experiment_id=experiment.id,
        mode=experiment.mode,
        seed=experiment.seed,
        hash_version=experiment.hash_version,
        coverage=experiment.coverage,
        weights=tuple(v["weight"] for v in variants),
        keys=tuple(v["key"] for v in variants),
        bodies=tuple(bodies),
        outside=outside,
    )
    return Payload(
        body=base.body,
        etag=base.etag,
        revision=base.revision,
        version=base.version,
        content=base.content,
        split=split,
        depends=tuple(dict.fromkeys(depends)),
    )


def hashed_variant(split: Split, unit: str) -> int:
    """The variant a unit gets from the weights alone (-1: outside the experiment's coverage)."""
    return assign(
        seed=split.seed,
        unit=unit,
        weights=split.weights,
        coverage=split.coverage,
        hash_version=split.hash_version,
    )


class StickyAssignments:
    """Bandit units keep their first variant: process-local map in front of the database."""

    def __init__(self, database: Database, capacity: int = 100_000) -> None:
        self._database = database
        self._capacity = capacity
        self._known: OrderedDict[tuple[int, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, experiment_id: int, unit: str) -> int | None:
        return self._known.get((experiment_id, unit))

    def variant(self, split: Split, unit: str) -> int:
        """The unit's variant, assigning it by the current weights the first time (blocking I/O)."""
        key = (split.experiment_id, unit)
        known = self._known.get(key)
        if known is not None:
            return known
        chosen = hashed_variant(split, unit)
        if chosen < 0:
            return chosen
        with self._database.session() as session:
            stored = session.scalar(
                select(Assignment.variant).where(
                    Assignment.experiment_id == split.experiment_id, Assignment.unit == unit
                )
            )
        if stored is None:
            try:
                with self._database.write_session() as session:
                    session.add(Assignment(experiment_id=split.experiment_id, unit=unit, variant=chosen))
                    session.commit()
                stored = chosen
            except IntegrityError:  # another process assigned it first: theirs stands
                with self._database.session() as session:
                    stored = session.scalar(
                        select(Assignment.variant).where(
                            Assignment.experiment_id == split.experiment_id, Assignment.unit == unit
                        )
                    )
        result = int(stored if stored is not None else chosen)
        with self._lock:
            self._known[key] = result
            while len(self._known) > self._capacity:
                self._known.popitem(last=False)
        return result
