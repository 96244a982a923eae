"""`PROMPTKEEPER_LOG_FORMAT=json`: one JSON object per log line, with the record's extra fields."""

from __future__ import annotations

import io
import json
import logging

from promptkeeper.config import Settings
from promptkeeper.logs import configure_logging


def test_json_log_lines(tmp_path: object) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(Settings(database_url="sqlite://", log_format="json", log_level="info"))
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("promptkeeper.test").warning("rolled back %s", "v2", extra={"monitor_id": 7})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("promptkeeper.test").exception("failed")
        first, second = (json.loads(line) for line in stream.getvalue().splitlines())
        assert first["level"] == "warning" and first["logger"] == "promptkeeper.test"
        assert (
            first["message"] == "rolled back v2"
            and first["monitor_id"] == 7
            and first["time"].endswith("+00:00")
        )
        assert second["level"] == "error" and "RuntimeError: boom" in second["exception"]
        configure_logging(Settings(database_url="sqlite://", log_level="debug"))
        assert type(root.handlers[0].formatter) is logging.Formatter and root.level == logging.DEBUG
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
