"""OpenTelemetry GenAI ingestion: an OTLP/HTTP traces receiver whose spans, linked to prompt
versions, become generation records for the monitors and outcome events for experiments
(docs/opentelemetry.md).

    decode.py    OTLP/HTTP bodies in and out (protobuf and JSON, gzip), with opentelemetry-proto
    mapping.py   one span -> its prompt link and measurements (pure)
    service.py   linked spans -> `experiments.ingestion.ingest` (the path of POST /v1/events)
    receiver.py  POST /otlp/v1/traces
"""
