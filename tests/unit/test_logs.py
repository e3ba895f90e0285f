"""Structured logs: one JSON object per line, or text with ``key=value`` extras."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from arcano_tools.logs import JsonFormatter, TextFormatter, configure_logging

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing to a buffer; the formatter is set by each test."""
    logger = logging.getLogger(f"arcano_tools.tests.{request.node.name}")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)


def use(logger: logging.Logger, formatter: logging.Formatter) -> None:
    logger.handlers[0].setFormatter(formatter)


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


# --- JSON -------------------------------------------------------------------------------------


def test_json_emits_one_object_per_record_with_the_extra_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, JsonFormatter())
    logger.info("job %s finished", "j-1", extra={"action": "finish", "job_id": "j-1", "rh_code": 0})

    [line] = lines(buffer)
    data = json.loads(line)
    assert data["msg"] == "job j-1 finished"
    assert data["level"] == "info"
    assert data["logger"] == logger.name
    assert data["action"] == "finish"
    assert data["job_id"] == "j-1"
    assert data["rh_code"] == 0
    assert datetime.fromisoformat(data["ts"]).utcoffset() is not None


def test_json_leaves_out_the_standard_record_attributes(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, JsonFormatter())
    logger.warning("plain", extra={"action": "x"})
    data = json.loads(lines(buffer)[0])
    assert set(data) == {"ts", "level", "logger", "msg", "action"}


def test_json_without_extras_has_only_the_base_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, JsonFormatter())
    logger.error("nothing else")
    assert set(json.loads(lines(buffer)[0])) == {"ts", "level", "logger", "msg"}


def test_json_stays_one_line_for_a_multi_line_message_and_an_exception(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, JsonFormatter())
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("first line\nsecond line", extra={"action": "crash"})

    [line] = lines(buffer)
    data = json.loads(line)
    assert data["msg"] == "first line\nsecond line"
    assert data["level"] == "error"
    assert "RuntimeError: boom" in data["exc"]
    assert data["action"] == "crash"


def test_json_writes_values_it_cannot_encode_as_text(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, JsonFormatter())
    when = datetime(2025, 3, 1, 12, 0, 0)
    logger.info("x", extra={"at": when, "tables": {"upscaler_jobs"}})
    data = json.loads(lines(buffer)[0])
    assert data["at"] == str(when)
    assert data["tables"] == "{'upscaler_jobs'}"


async def test_json_in_an_asyncio_task_does_not_leak_the_task_name(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, JsonFormatter())
    logger.info("in a task", extra={"job_id": "j-2"})
    assert set(json.loads(lines(buffer)[0])) == {"ts", "level", "logger", "msg", "job_id"}


# --- text -------------------------------------------------------------------------------------


def test_text_appends_the_extra_fields_as_key_value(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, TextFormatter(TEXT_FORMAT))
    logger.info("job finished", extra={"action": "finish", "job_id": "j-1"})
    assert lines(buffer) == [f"INFO {logger.name}: job finished action=finish job_id=j-1"]


def test_text_without_extras_is_the_plain_format(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, TextFormatter(TEXT_FORMAT))
    logger.warning("careful")
    assert lines(buffer) == [f"WARNING {logger.name}: careful"]


def test_text_keeps_the_order_the_extras_were_given(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    use(logger, TextFormatter(TEXT_FORMAT))
    logger.info("m", extra={"table": "veste_ai_jobs", "job_id": "j", "action": "a"})
    assert lines(buffer)[0].endswith(" m table=veste_ai_jobs job_id=j action=a")


# --- configure_logging ------------------------------------------------------------------------


@pytest.fixture
def arcano_logger() -> Iterator[logging.Logger]:
    """configure_logging changes the package logger: put it back afterwards."""
    logger = logging.getLogger("arcano_tools")
    httpx_logger = logging.getLogger("httpx")
    saved = (logger.handlers[:], logger.level, logger.propagate, httpx_logger.level)
    try:
        yield logger
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
        httpx_logger.setLevel(saved[3])


@pytest.mark.parametrize(("fmt", "formatter"), [("json", JsonFormatter), ("text", TextFormatter)])
def test_configure_logging_installs_exactly_one_handler_with_the_chosen_format(
    arcano_logger: logging.Logger, fmt: str, formatter: type[logging.Formatter]
) -> None:
    configure_logging(fmt)
    configure_logging(fmt)  # idempotent
    assert len(arcano_logger.handlers) == 1
    assert type(arcano_logger.handlers[0].formatter) is formatter
    assert arcano_logger.level == logging.INFO
    assert arcano_logger.propagate is False


def test_configure_logging_quiets_httpx_which_would_log_webhook_tokens(
    arcano_logger: logging.Logger,
) -> None:
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    configure_logging("text", level=logging.DEBUG)
    assert logging.getLogger("httpx").level == logging.WARNING
    assert arcano_logger.level == logging.DEBUG
