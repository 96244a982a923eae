"""OTLP/HTTP bodies: `ExportTraceServiceRequest` in; `ExportTraceServiceResponse` or `google.rpc.Status`
out, in the request's encoding.

Protobuf is parsed by the OpenTelemetry project's generated classes (`opentelemetry-proto`) and
JSON by `google.protobuf.json_format`, after the one change OTLP/JSON makes to protobuf's JSON
mapping: trace and span ids are hex strings, not base64. Unknown JSON fields are ignored, as the
spec asks of receivers. A gzip body is inflated up to a limit, so a small compressed body cannot
become gigabytes in memory.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Literal

from fastapi import HTTPException
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from promptkeeper.errors import BadRequest

Encoding = Literal["protobuf", "json"]
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES: dict[Encoding, str] = {"protobuf": PROTOBUF, "json": JSON}
#: HTTP status -> the google.rpc code an OTLP error body carries
RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def encoding_of(content_type: str | None) -> Encoding | None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    return None


def require_encoding(content_type: str | None) -> Encoding:
    encoding = encoding_of(content_type)
    if encoding is None:
        raise HTTPException(
            status_code=415,
            detail=f"header Content-Type: {str(content_type)[:100]!r} is not OTLP; send {PROTOBUF} or {JSON}",
        )
    return encoding


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent, or gunzipped (at most `limit` bytes: 413 past it)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise HTTPException(
            status_code=415,
            detail=f"header Content-Encoding: {encoding[:40]!r} is not supported; send gzip or none",
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body: not valid gzip ({exc})", details={"field": "body"}) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise HTTPException(
            status_code=413,
            detail=f"body: over {limit:,} bytes once inflated (PROMPTKEEPER_OTLP_MAX_BYTES); "
            "export smaller batches",
        )
    if not inflater.eof:
        raise BadRequest("body: the gzip stream is truncated", details={"field": "body"})
    return data


def parse(data: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if encoding == "protobuf":
        try:
            request.ParseFromString(data)
        except DecodeError as exc:
            raise BadRequest(
                f"body: not an OTLP ExportTraceServiceRequest in protobuf ({exc})", details={"field": "body"}
            ) from None
        return request
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise BadRequest(f"body: not JSON ({exc})", details={"field": "body"}) from None
    if not isinstance(document, dict):
        raise BadRequest("body: an OTLP JSON request is an object", details={"field": "body"})
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadRequest(
            f"body: not an OTLP ExportTraceServiceRequest ({exc})", details={"field": "body"}
        ) from None
    return request


_SPAN_IDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_LINK_IDS = ("traceId", "spanId", "trace_id", "span_id")


def _items(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON spells ids in hex; protobuf's JSON mapping reads bytes as base64."""
    for r, resource_spans in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for n, span in enumerate(_items(scope_spans, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _convert(span, _SPAN_IDS, where)
                for k, link in enumerate(_items(span, "links")):
                    _convert(link, _LINK_IDS, f"{where}.links[{k}]")


def _convert(item: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(item, dict):
        return
    for key in keys:
        value = item.get(key)
        if isinstance(value, str):
            try:
                item[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise BadRequest(
                    f"body.{where}.{key}: {value[:40]!r} is not a hex id",
                    details={"field": f"body.{where}.{key}"},
                ) from None


def export_response(encoding: Encoding, rejected: int, message: str) -> bytes:
    """The success answer: `partial_success` set when spans were rejected (or there is a warning)."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == "json":
        return bytes(json_format.MessageToJson(response, indent=None).encode())
    return bytes(response.SerializeToString())


def status_body(encoding: Encoding, http_status: int, message: str) -> bytes:
    """An OTLP error body: a `google.rpc.Status`, in the request's encoding."""
    status = status_pb2.Status(code=RPC_CODES.get(http_status, code_pb2.INTERNAL), message=message)
    if encoding == "json":
        return bytes(json_format.MessageToJson(status, indent=None).encode())
    return bytes(status.SerializeToString())
