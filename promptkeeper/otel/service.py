"""Linked spans -> generation records for the monitors and outcome events for experiments.

Nothing here writes a row itself: the spans become `EventIn`s and go through
`experiments.ingestion.ingest`, the path `POST /v1/events` takes, so a monitor's sampling, the
per-unit rollup and idempotent generation records are the ones the SDK gets.

- A span with the model's output text (and no error status) is a generation record: the request
  id the SDK served (`promptkeeper.prompt.request_id`), or one made of the trace and span ids, so
  an exporter's retry stores it once.
- A span that names its experiment (`promptkeeper.prompt.experiment`, `.variant`, `.unit`, as
  `Prompt.otel_attributes()` sets them for a prompt served to a unit) is an outcome tagged with the
  variant the SDK served: latency, time to first token, tokens, cost, safety flag and, when the
  project defines the binary metric `llm_error`, the span's error status. Spans outside an
  experiment give no outcome: an outcome no exposure ever claims would wait untagged forever.

A span that cannot be right (unknown prompt version or environment, unknown experiment or variant,
a variant that serves another version) is rejected alone, with its reason; the rest of the batch is
stored (OTLP partial success). The caller owns the transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.evaluations.costs import cost_usd, price_of
from promptkeeper.experiments import ingestion as events
from promptkeeper.experiments.models import Experiment, Metric
from promptkeeper.experiments.schemas import EventIn
from promptkeeper.monitoring import generations as _monitoring_sink  # noqa: F401 - registers the generation sink
from promptkeeper.otel.mapping import Linked, Rejected, describe, map_span
from promptkeeper.prompts.models import Environment, Prompt, PromptVersion

ERROR_METRIC = "llm_error"
#: reasons quoted in the partial-success message at most (the count covers all)
MAX_REASONS = 10


@dataclass(slots=True)
class Batch:
    """One export request's spans, sorted: linked ones to store, and the counts of the rest."""

    spans: int = 0
    unlinked: int = 0
    linked: list[tuple[Span, Linked]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    generations: int = 0
    outcomes: int = 0

    @property
    def stored(self) -> int:
        return len(self.linked)

    def message(self) -> str:
        """The partial-success `error_message` (empty when every span was stored)."""
        if not self.rejected and not self.unlinked:
            return ""
        parts = [f"{self.unlinked + len(self.rejected)} of {self.spans} spans rejected"]
        if self.unlinked:
            parts.append(
                f"{self.unlinked} not linked to a prompt version (no promptkeeper.prompt.name or "
                "langfuse.observation.prompt.name attribute; see docs/opentelemetry.md)"
            )
        parts.extend(self.rejected[:MAX_REASONS])
        if len(self.rejected) > MAX_REASONS:
            parts.append(f"and {len(self.rejected) - MAX_REASONS} more")
        return "; ".join(parts)


def classify(request: ExportTraceServiceRequest) -> Batch:
    """Map every span (pure: no I/O, so a batch of unlinked spans never opens a transaction)."""
    batch = Batch()
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                batch.spans += 1
                mapped = map_span(span)
                if mapped is None:
                    batch.unlinked += 1
                elif isinstance(mapped, Rejected):
                    batch.rejected.append(f"{describe(span)}: {mapped.reason}")
                elif mapped.request_id is None and not span.span_id:
                    batch.rejected.append(f"{describe(span)}: a span has a span_id")
                else:
                    batch.linked.append((span, mapped))
    return batch


def store(*, session: Session, project_id: int, batch: Batch) -> None:
    """Check the linked spans against the registry and store them (the caller commits)."""
    to_ingest = prepare(session=session, project_id=project_id, batch=batch)
    if to_ingest:
        result = events.ingest(session=session, project_id=project_id, events=to_ingest)
        batch.generations = result.generations


def prepare(*, session: Session, project_id: int, batch: Batch) -> list[EventIn]:
    """The events of the linked spans that fit the registry; the others move to `batch.rejected`."""
    if not batch.linked:
        return []
    versions = _latest_versions(session, project_id, {link.prompt for _, link in batch.linked})
    environments = set(session.scalars(select(Environment.name).where(Environment.project_id == project_id)))
    experiment_ids = {link.experiment_id for _, link in batch.linked if link.experiment_id is not None}
    variants = _variants(session, project_id, experiment_ids)
    track_errors = bool(experiment_ids) and _defines_error_metric(session, project_id)
    accepted: list[tuple[Span, Linked]] = []
    to_ingest: list[EventIn] = []
    for span, link in batch.linked:
        reason = _problem(link, versions, environments, variants)
        if reason is not None:
            batch.rejected.append(f"{describe(span)}: {reason}")
            continue
        accepted.append((span, link))
        request_id = link.request_id or f"otel-{span.trace_id.hex()}-{span.span_id.hex()}"
        cost = cost_usd(
            price_of(link.model) if link.model else None, link.input_tokens, link.output_tokens, cached=False
        )
        measured: dict[str, Any] = {
            "latency_ms": link.latency_ms,
            "ttft_ms": link.ttft_ms,
            "input_tokens": link.input_tokens,
            "output_tokens": link.output_tokens,
            "cost_usd": cost,
        }
        tagged: dict[str, Any] = {}
        if link.experiment_id is not None:
            tagged = {"experiment_id": link.experiment_id, "variant": link.variant, "unit": link.unit}
            to_ingest.append(
                _event(
                    type="outcome",
                    request_id=request_id,
                    at=link.at,
                    prompt=link.prompt,
                    version=link.version,
                    safety_flag=link.safety_flag,
                    metrics={ERROR_METRIC: 1.0 if link.error else 0.0} if track_errors else None,
                    **tagged,
                    **measured,
                )
            )
            batch.outcomes += 1
        if link.output is not None and not link.error:
            to_ingest.append(
                _event(
                    type="generation",
                    request_id=request_id,
                    at=link.at,
                    prompt=link.prompt,
                    version=link.version,
                    environment=link.environment,
                    output=link.output,
                    **tagged,
                    **measured,
                )
            )
    batch.linked = accepted
    return to_ingest


_EVENT_DEFAULTS: dict[str, Any] = {
    name: spec.default for name, spec in EventIn.model_fields.items() if not spec.is_required()
}


def _event(**values: Any) -> EventIn:
    """An `EventIn` from values this module checked already (validating 20,000 a second again
    would cost more than storing them)."""
    return EventIn.model_construct(**{**_EVENT_DEFAULTS, **values})


def _latest_versions(session: Session, project_id: int, names: set[str]) -> dict[str, int]:
    rows = session.execute(
        select(Prompt.name, func.max(PromptVersion.number))
        .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
        .where(Prompt.project_id == project_id, Prompt.name.in_(sorted(names)))
        .group_by(Prompt.name)
    )
    return {str(name): int(number) for name, number in rows}


def _variants(session: Session, project_id: int, ids: set[int]) -> dict[int, dict[str, int]]:
    """Experiment id -> variant key -> the version it serves."""
    if not ids:
        return {}
    rows = session.execute(
        select(Experiment.id, Experiment.variants).where(
            Experiment.project_id == project_id, Experiment.id.in_(sorted(ids))
        )
    )
    return {row[0]: {v["key"]: int(v["version"]) for v in row[1]} for row in rows}


def _defines_error_metric(session: Session, project_id: int) -> bool:
    found = session.scalar(
        select(Metric.kind).where(Metric.project_id == project_id, Metric.name == ERROR_METRIC)
    )
    return found == "binary"


def _problem(
    link: Linked,
    versions: dict[str, int],
    environments: set[str],
    variants: dict[int, dict[str, int]],
) -> str | None:
    latest = versions.get(link.prompt)
    if latest is None:
        return f"prompt '{link.prompt}' not found"
    if link.version > latest:
        return f"prompt '{link.prompt}' has no version {link.version} (latest: {latest})"
    if link.environment not in environments:
        return f"environment '{link.environment}' not found"
    if link.experiment_id is None:
        return None
    served = variants.get(link.experiment_id)
    if served is None:
        return f"experiment {link.experiment_id} not found"
    if link.variant not in served:
        return f"'{link.variant}' is not a variant of experiment {link.experiment_id} ({', '.join(served)})"
    if served[str(link.variant)] != link.version:
        return (
            f"variant '{link.variant}' of experiment {link.experiment_id} serves version "
            f"{served[str(link.variant)]}, not {link.version}"
        )
    return None


class Counters:
    """Spans this process received, by fate, for `/metrics` (thread-safe: ingestion runs in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = dict.fromkeys(
            ("received", "stored", "unlinked", "rejected", "generations", "outcomes"), 0
        )

    def add(self, batch: Batch) -> None:
        with self._lock:
            self.values["received"] += batch.spans
            self.values["stored"] += batch.stored
            self.values["unlinked"] += batch.unlinked
            self.values["rejected"] += len(batch.rejected)
            self.values["generations"] += batch.generations
            self.values["outcomes"] += batch.outcomes

    def samples(self) -> Iterable[tuple[str, str, str, float]]:
        """`(name, kind, help, value)` for the Prometheus exposition."""
        with self._lock:
            values = dict(self.values)
        helps = {
            "received": "Spans received on /otlp/v1/traces.",
            "stored": "Spans linked to a prompt version and stored.",
            "unlinked": "Spans without a prompt link, dropped.",
            "rejected": "Linked spans rejected (unknown prompt version, experiment or variant, bad link).",
            "generations": "Generation records stored from spans (a resent span is stored once).",
            "outcomes": "Experiment outcomes recorded from spans.",
        }
        names = {"generations": "otlp_generations_total", "outcomes": "otlp_outcomes_total"}
        return [
            (names.get(name, f"otlp_spans_{name}_total"), "counter", helps[name], value)
            for name, value in values.items()
        ]
