"""`POST /otlp/v1/traces`: the OTLP/HTTP traces endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT=<server>/otlp`).

Authenticated like `POST /v1/events` (any role's API key in `Authorization: Bearer`), because the
applications that export traces hold runtime keys. Answers follow the OTLP/HTTP spec: 200 with an
`ExportTraceServiceResponse` in the request's encoding (its `partial_success` counts the spans not
stored and says why), and every error as a `google.rpc.Status` in that encoding (the one error
handler, `api.error_responses`, shapes them): 400 malformed, 401/403, 413 too large, 415 another content
type or encoding, 429 throttled and 503 database unavailable, both with `Retry-After`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from promptkeeper.api.context import AppContext
from promptkeeper.api.deps import ContextDep, RuntimeCaller
from promptkeeper.otel import decode, service

_BINARY = {"schema": {"type": "string", "format": "binary"}}


class OtlpStatus(BaseModel):
    """`google.rpc.Status`: the error body of OTLP/HTTP (protobuf, or this JSON for JSON requests)."""

    code: int = Field(
        description="gRPC status code (3 invalid argument, 16 unauthenticated, 14 unavailable)."
    )
    message: str = Field(description="One line for a person: what is wrong and what to change.")
    details: list[dict[str, Any]] = Field(default_factory=list)


OTLP_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": OtlpStatus,
        "content": {decode.PROTOBUF: _BINARY},
        "description": "A client error as an OTLP `google.rpc.Status`, in the request's encoding.",
    },
    503: {
        "model": OtlpStatus,
        "content": {decode.PROTOBUF: _BINARY},
        "description": "The database is unavailable; retry after `Retry-After` seconds.",
    },
}
_EXPORT_RESPONSE_JSON = {
    "type": "object",
    "properties": {
        "partialSuccess": {
            "type": "object",
            "properties": {
                "rejectedSpans": {"type": ["string", "integer"]},
                "errorMessage": {"type": "string"},
            },
        }
    },
}

router = APIRouter(prefix="/otlp", tags=["opentelemetry"], responses=OTLP_ERROR_RESPONSES)


@router.post(
    "/v1/traces",
    response_class=Response,
    responses={
        200: {
            "description": "`ExportTraceServiceResponse`: `partial_success` counts the spans not stored.",
            "content": {decode.PROTOBUF: _BINARY, decode.JSON: {"schema": _EXPORT_RESPONSE_JSON}},
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "An OTLP `ExportTraceServiceRequest` (gzip allowed: `Content-Encoding: gzip`).",
            "content": {
                decode.PROTOBUF: _BINARY,
                decode.JSON: {"schema": {"type": "object", "description": "OTLP/JSON (hex ids)."}},
            },
        }
    },
)
async def export_traces(request: Request, context: ContextDep, caller: RuntimeCaller) -> Response:
    """Spans linked to prompt versions become generation records and experiment outcomes."""
    encoding = decode.require_encoding(request.headers.get("content-type"))
    body = await request.body()
    batch = await anyio.to_thread.run_sync(
        partial(_export, context, caller.project_id, body, encoding, request.headers.get("content-encoding"))
    )
    request.app.state.otlp.add(batch)
    rejected = batch.spans - batch.stored
    return Response(
        decode.export_response(encoding, rejected, batch.message()), media_type=decode.MEDIA_TYPES[encoding]
    )


def _export(
    context: AppContext, project_id: int, body: bytes, encoding: decode.Encoding, content_encoding: str | None
) -> service.Batch:
    """Inflate, parse and map in a worker thread (CPU work off the event loop), then store."""
    data = decode.inflate(body, content_encoding, context.settings.otlp_max_bytes)
    batch = service.classify(decode.parse(data, encoding))
    if batch.linked:
        with context.db.write_session() as session:
            service.store(session=session, project_id=project_id, batch=batch)
            session.commit()
    return batch
