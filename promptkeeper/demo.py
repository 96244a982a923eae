"""Sample data for a first look (`promptkeeper serve --sample-data`, used by `make run`)."""

from __future__ import annotations

import random
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import DEFAULT_PROJECT, Actor, Role, get_project
from promptkeeper.access.users import ensure_user
from promptkeeper.db.engine import Database
from promptkeeper.deployments import releases
from promptkeeper.evaluations import runs, suites
from promptkeeper.evaluations.schemas import RunCreate, SuiteCreate
from promptkeeper.experiments import ingestion as experiment_events
from promptkeeper.experiments import service as experiments
from promptkeeper.experiments.schemas import EventIn, ExperimentCreate, ExperimentStop
from promptkeeper.monitoring import generations as monitoring_ingest
from promptkeeper.monitoring import service as monitors
from promptkeeper.monitoring.schemas import MonitorCreate
from promptkeeper.prompts import service
from promptkeeper.prompts.models import Prompt
from promptkeeper.prompts.schemas import PromptCreate

AUTHOR = "sample-data"
#: The web UI's sign-in for the sample data (an admin of the default project).
DEMO_USER = "admin@example.com"

SAMPLES: list[dict[str, Any]] = [
    {
        "name": "support/reply",
        "description": "Customer-support answer in the brand voice.",
        "owner": "support-team",
        "tags": ["support", "chat"],
        "versions": [
            {
                "type": "chat",
                "messages": [
                    {"role": "system", "content": "You are a helpful support agent for {{ product }}."},
                    {"type": "placeholder", "name": "history"},
                    {"role": "user", "content": "{{ question }}"},
                ],
                "config": {"model": "gpt-4o-mini", "temperature": 0.2},
            },
            {
                "type": "chat",
                "messages": [
                    {
                        "role": "system",
                        "content": "You are a friendly, concise support agent for {{ product }}.\n"
                        "{% if tier == 'premium' %}The customer is premium: offer a call back.{% endif %}",
                    },
                    {"type": "placeholder", "name": "history"},
                    {"role": "user", "content": "{{ question }}"},
                ],
                "config": {"model": "gpt-4o-mini", "temperature": 0.3},
            },
        ],
        "deploy": {"production": 1, "staging": 2},
    },
    {
        "name": "summarize",
        "description": "Summarize a document in a few bullet points.",
        "owner": "platform",
        "tags": ["text"],
        "versions": [
            {
                "type": "text",
                "template": "Summarize the following text in {{ bullets }} bullet points:\n\n{{ text }}",
                "config": {"model": "gpt-4o-mini", "max_tokens": 300},
            },
        ],
        "deploy": {"production": 1},
    },
]


def seed(database: Database, project: str = DEFAULT_PROJECT) -> tuple[int, str | None]:
    """Create the sample prompts (and a web UI user) when the project has none.

    Returns how many prompts were created and the UI user's generated password (None when the
    project already had prompts: nothing is created or changed then).
    """
    with database.write_session() as session:
        project_row = get_project(session=session, name=project)
        if session.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.project_id == project_row.id)
        ):
            return 0, None
        password = secrets.token_urlsafe(12)
        ensure_user(
            session=session,
            project=project,
            email=DEMO_USER,
            password=password,
            role=Role.admin,
            name="Admin",
        )
        actor = Actor.system(AUTHOR, project_row.id)
        for sample in SAMPLES:
            first, *rest = sample["versions"]
            data = PromptCreate.model_validate(
                {
                    "name": sample["name"],
                    "description": sample["description"],
                    "owner": sample["owner"],
                    "tags": sample["tags"],
                    "content": first,
                    "message": "first version",
                }
            )
            prompt, _ = service.create_prompt(session=session, actor=actor, data=data)
            for index, raw in enumerate(rest, start=2):
                service.create_version(
                    session=session,
                    prompt=prompt,
                    content=service.parse_content(raw),
                    actor=actor,
                    message=f"revision {index}",
                )
            for environment, number in sample["deploy"].items():
                releases.deploy(
                    session=session,
                    project_id=project_row.id,
                    name=prompt.name,
                    environment=environment,
                    version=number,
                    actor=actor,
                    reason="sample data",
                )
        _seed_evaluation(session, actor)
        _seed_finished_experiment(session, actor)
        _seed_experiment(session, actor)
        _seed_monitor(session, actor)
        session.commit()
        return len(SAMPLES), password


def _seed_evaluation(session: Session, actor: Actor) -> None:
    """A small suite for `summarize` and a queued run of its version 1 (the server's worker runs it)."""
    cases = [
        {"key": key, "variables": {"bullets": 3, "text": text}, "tags": tags}
        for key, text, tags in (
            ("release-notes", "Version 2 adds drafts, reviews and webhooks.", ["product"]),
            ("incident", "The API was slow for ten minutes; a cache fixed it.", ["ops"]),
            ("empty", "", ["edge-case"]),
        )
    ]
    suite, _ = suites.create_suite(
        session=session,
        actor=actor,
        data=SuiteCreate.model_validate(
            {
                "name": "summarize-basics",
                "prompt": "summarize",
                "description": "Sample suite: summaries stay short and mention the bullets asked for.",
                "scorers": [
                    {"name": "length", "params": {"max_chars": 400}},
                    {"name": "contains", "params": {"value": "bullet"}},
                ],
                "cases": cases,
            }
        ),
    )
    runs.create_run(
        session=session,
        actor=actor,
        name="summarize",
        data=RunCreate(suite=suite.name, repeats=2),
        default_concurrency=4,
    )


def _seed_experiment(session: Session, actor: Actor) -> None:
    """A running 90/10 experiment on the support prompt in production (control v1, candidate v2)."""
    experiment = experiments.create_experiment(
        session=session,
        actor=actor,
        data=ExperimentCreate.model_validate(
            {
                "prompt": SAMPLES[0]["name"],
                "environment": "production",
                "name": "friendlier tone",
                "hypothesis": "v2's friendlier system prompt completes more conversations",
                "control_weight": 90,
                "candidates": [{"version": 2, "weight": 10, "key": "friendly"}],
                "primary_metric": "completion",
                "guardrails": ["latency_ms", "safety_flag"],
                "baseline": 0.4,
                "mde": 0.05,
            }
        ),
    )
    experiments.start_experiment(
        session=session, actor=actor, experiment_id=experiment.id, reason="sample data"
    )


def _seed_finished_experiment(session: Session, actor: Actor) -> None:
    """A concluded 50/50 experiment in staging with 600 users' events, so the results page has
    numbers and charts (control v2, candidate v1; stopped keeping the control)."""
    experiment = experiments.create_experiment(
        session=session,
        actor=actor,
        data=ExperimentCreate.model_validate(
            {
                "prompt": SAMPLES[0]["name"],
                "environment": "staging",
                "name": "premium call-back offer (staging dry run)",
                "hypothesis": "offering premium customers a call back lowers completion",
                "candidates": [{"version": 1, "weight": 1, "key": "no_offer"}],
                "primary_metric": "completion",
                "baseline": 0.45,
                "mde": 0.1,
            }
        ),
    )
    experiments.start_experiment(
        session=session, actor=actor, experiment_id=experiment.id, reason="sample data"
    )
    rng = random.Random(7)
    batch: list[EventIn] = []
    for user in range(600):
        key = "control" if user % 2 else "no_offer"
        request_id = f"sample-exp-{user}"
        batch.append(
            EventIn(
                type="exposure",
                request_id=request_id,
                experiment_id=experiment.id,
                variant=key,
                unit=f"user-{user}",
            )
        )
        batch.append(
            EventIn(
                type="outcome",
                request_id=request_id,
                completed=rng.random() < (0.47 if key == "control" else 0.44),
                latency_ms=rng.gauss(900, 150),
            )
        )
    experiment_events.ingest(session=session, project_id=actor.project_id, events=batch)
    experiments.stop_experiment(
        session=session,
        actor=actor,
        experiment_id=experiment.id,
        data=ExperimentStop(decision="keep_control", reason="no significant difference; keeping v2"),
    )


def _seed_monitor(session: Session, actor: Actor) -> None:
    """A monitor on the support prompt in production and 600 production outputs for it to score
    (the server's worker scores them on start: the status page shows windows and a first look)."""
    monitors.create_monitor(
        session=session,
        actor=actor,
        data=MonitorCreate.model_validate(
            {
                "prompt": "support/reply",
                "environment": "production",
                "sample_rate": 0.5,
                "scorers": [
                    {
                        "scorer": "not_contains",
                        "name": "no_internal_links",
                        "params": {"values": ["intranet."]},
                    },
                    {"scorer": "length", "params": {"max_words": 120}, "critical_margin": 0.1},
                ],
            }
        ),
    )
    answers = [
        "Thanks for reaching out! You can reset your password from Settings > Security.",
        "Sorry about that. I have refunded the duplicate charge; it shows within 5 days.",
        "Our internal guide is at intranet.example/refunds, but here is the short version: ...",
    ]
    events = [
        EventIn(
            type="generation",
            request_id=f"sample-{i}",
            prompt="support/reply",
            version=1,
            environment="production",
            output=answers[2] if i % 37 == 0 else answers[i % 2],
            input={"question": "How do I ...?"},
            latency_ms=400.0 + (i * 37) % 500,
            output_tokens=40 + i % 30,
        )
        for i in range(600)
    ]
    monitoring_ingest.store(session, actor.project_id, events)
