"""What a finished evaluation run sets off: the deploys that waited for it, and auto-promotion.

Evaluations sit below the deployment policy (the policy asks their gates), so the executor does not
import this module: the worker hands it `run_finished` as the executor's `on_finished`, and the
executor calls it in the transaction that ends the run.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptkeeper.audit.service import record
from promptkeeper.core.actor import Actor
from promptkeeper.deployments import policy as deployments
from promptkeeper.deployments.pending import finish_for_run
from promptkeeper.deployments.releases import current_release
from promptkeeper.errors import PromptKeeperError
from promptkeeper.evaluations import gates
from promptkeeper.evaluations.models import EvalGate, EvalRun
from promptkeeper.prompts.models import Environment, Prompt

log = logging.getLogger(__name__)

AUTO_PROMOTE = "auto-promote"


def run_finished(session: Session, run: EvalRun) -> dict[str, Any]:
    """Settle the deploys waiting for `run`, then (if it succeeded) judge it and auto-promote;
    returns what goes into the run's summary."""
    finish_for_run(session=session, run=run)  # deploys waiting for this run, before auto-promotion
    if run.status != "succeeded":
        return {}
    return settle(session=session, run=run)


def settle(*, session: Session, run: EvalRun) -> dict[str, Any]:
    """After a run succeeded: every gate on its suite judges it, and auto-promoting gates deploy.

    The verdicts go into the run's summary (the CLI's exit code and the UI read them there). Each
    promotion goes through the deploy policy like any other deploy (audited, actor
    `auto-promote`); one that a policy refuses is recorded and skipped.
    """
    prompt = session.get(Prompt, run.prompt_id)
    assert prompt is not None
    verdicts: dict[str, Any] = {}
    promoted: list[str] = []
    rows = session.execute(
        select(EvalGate, Environment)
        .join(Environment, Environment.id == EvalGate.environment_id)
        .where(EvalGate.suite_id == run.suite_id)
        .order_by(Environment.position)
    ).all()
    actor = Actor.system(AUTO_PROMOTE, run.project_id)
    for gate, environment in rows:
        verdict = gates.evaluate_gate(
            session=session,
            gate=gate,
            prompt=prompt,
            environment=environment,
            version=run.prompt_version,
            run=run,
        )
        verdicts[environment.name] = {
            "passed": verdict.passed,
            "failures": verdict.failures,
            **({} if verdict.passed else {"message": verdict.message(prompt.name, run.prompt_version)}),
        }
        if not (gate.auto_promote and verdict.passed):
            continue
        release = current_release(session=session, prompt=prompt, environment=environment)
        if release is not None and release.version_number == run.prompt_version:
            continue
        try:
            with session.begin_nested():
                deployments.deploy(
                    session=session,
                    actor=actor,
                    name=prompt.name,
                    environment=environment.name,
                    version=run.prompt_version,
                    reason=f"evaluation run {run.id} passed the gate",
                    action="promote",
                )
            promoted.append(environment.name)
        except PromptKeeperError as exc:
            log.info(
                "auto-promotion of %s v%s to %s skipped: %s",
                prompt.name,
                run.prompt_version,
                environment.name,
                exc,
            )
            record(
                session=session,
                actor=actor,
                action="gate.auto_promote_skipped",
                target_type="environment",
                target=environment.name,
                prompt=prompt.name,
                environment=environment.name,
                after={"run": run.id, "version": run.prompt_version, "reason": exc.message},
            )
    return {"gates": verdicts, "auto_promoted": promoted}
