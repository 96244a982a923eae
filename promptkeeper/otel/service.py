"""Linked spans -> generation records for the monitors and outcome events for experiments.

Nothing here writes a table itself: the spans become the rows `POST /v1/events` would store and go
through the writers that path uses (`experiments.ingestion.store_rows`,
`monitoring.generations.store_rows`), so a monitor's sampling, the per-unit rollup and idempotent
generation records are the ones the SDK gets.

- A span with the model's output text (and no error status) is a generation record: the request
  id the SDK served (`promptkeeper.prompt.request_id`), or one made of the trace and span ids, so
  an exporter's retry stores it once.
- A span that names its experiment (`promptkeeper.prompt.experiment`, `.variant`, `.unit`, as
  `Prompt.otel_attributes()` sets them for a prompt served to a unit) is an outcome tagged with the
  variant the SDK served: latency, time to first token, tokens, cost, safety flag and, when the
  project defines the binary metric `llm_error`, the span's error status. Spans outside an
  experiment give no outcome: an outcome no exposure ever claims would wait untagged forever. The
  outcome keeps its span's trace and span ids, so an exporter's resend counts once.

A span that cannot be right (unknown prompt version or environment, unknown experiment or variant,
a variant that serves another version) is rejected alone, with its reason; the rest of the batch is
stored (OTLP partial success). The caller owns the transaction.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import BindParameter, String, bindparam, cast, func, literal_column, select, union_all
from sqlalchemy.orm import Session

from promptkeeper.evaluations.costs import cost_usd, price_of
from promptkeeper.experiments import ingestion as events
from promptkeeper.experiments.models import Experiment, Metric
from promptkeeper.monitoring import generations
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
                else:
                    trace_id, span_id = span.trace_id, span.span_id
                    if len(trace_id) != 16 or len(span_id) != 8:
                        batch.rejected.append(
                            f"{describe(span)}: a span's trace_id is 16 bytes and its span_id 8 (OTLP)"
                        )
                    else:
                        mapped.span_key = trace_id.hex() + span_id.hex()
                        batch.linked.append((span, mapped))
    return batch


@dataclass(slots=True)
class Rows:
    """What a batch stores: event rows (`experiments.ingestion.COLUMNS`) and generation records
    (`monitoring.generations.ROW_FIELDS`)."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    generations: list[dict[str, Any]] = field(default_factory=list)


def store(*, session: Session, project_id: int, batch: Batch) -> None:
    """Check the linked spans against the registry and store them (the caller commits)."""
    rows = prepare(session=session, project_id=project_id, batch=batch)
    write(session=session, project_id=project_id, batch=batch, rows=rows)


def write(*, session: Session, project_id: int, batch: Batch, rows: Rows) -> None:
    """Store prepared rows: outcomes (a span's outcome stored before is skipped, so an exporter's
    resend counts once) and generation records (one per request id)."""
    batch.outcomes = events.store_rows(session, rows.outcomes)
    batch.generations = generations.store_rows(session, project_id, rows.generations)


def prepare(*, session: Session, project_id: int, batch: Batch) -> Rows:
    """The rows of the linked spans that fit the registry; the others move to `batch.rejected`.

    Rows are built here rather than as `EventIn`s for `ingestion.ingest`: every value was checked by
    the mapping and against the registry, and validating 20,000 spans a second twice cost more than
    storing them (profiled). They are the rows `ingest` stores for the same events.
    """
    rows = Rows()
    if not batch.linked:
        return rows
    experiment_ids = {link.experiment_id for _, link in batch.linked if link.experiment_id is not None}
    versions, environments, variants, error_metric = _registry(
        session, project_id, {link.prompt for _, link in batch.linked}, experiment_ids
    )
    track_errors = bool(experiment_ids) and error_metric
    prices: dict[str, Any] = {}
    empty: dict[str, Any] = dict.fromkeys(events.COLUMNS)
    empty["project_id"] = project_id
    empty["kind"] = "outcome"
    accepted: list[tuple[Span, Linked]] = []
    for span, link in batch.linked:
        reason = _problem(link, versions, environments, variants)
        if reason is not None:
            batch.rejected.append(f"{describe(span)}: {reason}")
            continue
        accepted.append((span, link))
        span_key = link.span_key
        request_id = link.request_id or f"otel-{span_key[:32]}-{span_key[32:]}"
        cost = None
        if link.model:
            if link.model not in prices:
                prices[link.model] = price_of(link.model)
            cost = cost_usd(prices[link.model], link.input_tokens, link.output_tokens, cached=False)
        experiment_id = link.experiment_id
        in_experiment = experiment_id is not None
        if experiment_id is not None:
            outcome = empty.copy()
            outcome["request_id"] = request_id
            outcome["at"] = link.at
            outcome["experiment_id"] = experiment_id
            outcome["variant"] = variants[experiment_id][str(link.variant)][0]
            outcome["unit"] = link.unit
            outcome["prompt"] = link.prompt
            outcome["version"] = link.version
            outcome["latency_ms"] = link.latency_ms
            outcome["ttft_ms"] = link.ttft_ms
            outcome["input_tokens"] = link.input_tokens
            outcome["output_tokens"] = link.output_tokens
            outcome["cost_usd"] = cost
            outcome["safety_flag"] = link.safety_flag
            outcome["span_key"] = span_key
            if track_errors:
                outcome["custom"] = {ERROR_METRIC: 1.0 if link.error else 0.0}
            rows.outcomes.append(outcome)
        if link.output is not None and not link.error:
            rows.generations.append(
                {
                    "request_id": request_id,
                    "at": link.at,
                    "prompt": link.prompt,
                    "environment": link.environment,
                    "version": link.version,
                    "output": link.output,
                    "experiment_id": link.experiment_id,
                    "variant": link.variant if in_experiment else None,
                    "unit": link.unit if in_experiment else None,
                    "input": None,
                    "latency_ms": link.latency_ms,
                    "ttft_ms": link.ttft_ms,
                    "input_tokens": link.input_tokens,
                    "output_tokens": link.output_tokens,
                    "cost_usd": cost,
                    "thumbs": None,
                    "rating": None,
                    "edited": None,
                    "regenerated": None,
                }
            )
    batch.linked = accepted
    return rows


#: What a batch's links are checked against, built once: constructing and keying the statement
#: for every batch cost more than running it (a prebuilt statement's cache key is memoized).
_PROJECT: BindParameter[int] = bindparam("project")
_REGISTRY = union_all(
    select(literal_column("'version'", String), Prompt.name, cast(func.max(PromptVersion.number), String))
    .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
    .where(Prompt.project_id == _PROJECT, Prompt.name.in_(bindparam("names", expanding=True)))
    .group_by(Prompt.name),
    select(literal_column("'environment'", String), Environment.name, literal_column("''", String)).where(
        Environment.project_id == _PROJECT
    ),
    select(literal_column("'metric'", String), Metric.name, Metric.kind).where(
        Metric.project_id == _PROJECT, Metric.name == ERROR_METRIC
    ),
    select(
        literal_column("'experiment'", String), cast(Experiment.id, String), cast(Experiment.variants, String)
    ).where(Experiment.project_id == _PROJECT, Experiment.id.in_(bindparam("experiments", expanding=True))),
)


def _registry(
    session: Session, project_id: int, names: set[str], experiment_ids: set[int]
) -> tuple[dict[str, int], set[str], dict[int, dict[str, tuple[int, int]]], bool]:
    """What the batch's links are checked against, in one round trip (four queries cost a batch of
    512 spans about 5 µs a span): each named prompt's latest version, the project's environments,
    each experiment's variants (key -> its index and the version it serves) and whether the project
    defines the binary metric `llm_error`."""
    found = session.connection().execute(
        _REGISTRY, {"project": project_id, "names": sorted(names), "experiments": sorted(experiment_ids)}
    )
    versions: dict[str, int] = {}
    environments: set[str] = set()
    variants: dict[int, dict[str, tuple[int, int]]] = {}
    error_metric = False
    for what, key, value in found:
        if what == "version":
            versions[str(key)] = int(value)
        elif what == "environment":
            environments.add(str(key))
        elif what == "metric":
            error_metric = value == "binary"
        else:
            served = json.loads(value)
            variants[int(key)] = {v["key"]: (index, int(v["version"])) for index, v in enumerate(served)}
    return versions, environments, variants, error_metric


def _problem(
    link: Linked,
    versions: dict[str, int],
    environments: set[str],
    variants: dict[int, dict[str, tuple[int, int]]],
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
    version = served[str(link.variant)][1]
    if version != link.version:
        return (
            f"variant '{link.variant}' of experiment {link.experiment_id} serves version "
            f"{version}, not {link.version}"
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
