"""Structured logging: ``key=value`` text by default, one JSON object per line with
``ARCANO_LOG_FORMAT=json``. Every record may carry ``action``, ``job_id``, ``table``… as
``extra``; secrets never reach a record (the client logs no bodies, keys are never passed)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: Attributes every LogRecord has; anything else came through ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = " ".join(f"{k}={_quoted(v)}" for k, v in _extras(record).items())
        return f"{base} {extras}" if extras else base


def _quoted(value: Any) -> str:
    """``key=value`` stays parseable: values with spaces, quotes or ``=`` are JSON-quoted."""
    text = str(value)
    return json.dumps(text) if (not text or any(ch in text for ch in ' "=')) else text


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Install one handler on the ``arcano_tools`` logger (idempotent)."""
    logger = logging.getLogger("arcano_tools")
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # httpx logs every URL at INFO; webhook URLs carry per-job tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)
