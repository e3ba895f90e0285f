"""Structured logs: one JSON object per line, or text with ``key=value`` extras."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from arcano_tools import logs
from arcano_tools.logs import JsonFormatter, LogThread, TextFormatter, configure_logging

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
    [thread] = arcano_logger.handlers
    assert isinstance(thread, LogThread)
    assert type(thread.handler.formatter) is formatter
    assert arcano_logger.level == logging.INFO
    assert arcano_logger.propagate is False


def test_configure_logging_quiets_httpx_which_would_log_webhook_tokens(
    arcano_logger: logging.Logger,
) -> None:
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    configure_logging("text", level=logging.DEBUG)
    assert logging.getLogger("httpx").level == logging.WARNING
    assert arcano_logger.level == logging.DEBUG


def test_the_logging_thread_writes_every_record_in_order_with_its_extras(
    arcano_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    log = logging.getLogger("arcano_tools.some.module")
    items = ["a"]
    log.info("job %s finished", "j-1", extra={"action": "finish", "job_id": "j-1"})
    log.warning("saw %s", items)
    items.append("changed after the call")  # the line says what was true when it was logged
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    logs._stop_log_thread()  # what a normal exit does: everything waiting is written

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["job j-1 finished", "saw ['a']", "it failed"]
    assert lines[0]["action"] == "finish"
    assert lines[0]["job_id"] == "j-1"
    assert "ValueError: boom" in lines[2]["exc"]


@contextlib.contextmanager
def logged_through(sink: logging.Handler, name: str) -> Iterator[tuple[logging.Logger, LogThread]]:
    """A private logger whose records a :class:`LogThread` writes to ``sink``; the thread is
    stopped (what waits written) when the block ends."""
    thread = LogThread(sink)
    log = logging.getLogger(f"arcano_tools.tests.{name}")
    log.propagate = False
    log.addHandler(thread)
    try:
        yield log, thread
    finally:
        thread.stop()
        log.removeHandler(thread)


class _StuckSink(logging.Handler):
    """A log collector that stopped reading: every write waits until ``released``."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.written: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.released.wait()
        self.written.append(record.getMessage())


def test_a_stuck_log_sink_never_blocks_the_code_that_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the handler on the event loop, a full stderr pipe froze every request."""
    monkeypatch.setattr(logs, "LOG_QUEUE_MAX", 3)
    sink = _StuckSink()
    with logged_through(sink, "stuck") as (log, thread):
        try:
            for i in range(10):  # returns at once: the first is being written, 3 wait, 6 dropped
                log.warning("line %d", i)
            assert thread.dropped >= 10 - 3 - 1
        finally:
            sink.released.set()
        thread.stop()
        assert sink.written == [f"line {i}" for i in range(10 - thread.dropped)]


def test_a_forked_worker_writes_its_own_records(tmp_path: Path) -> None:
    """granian forks its workers: a child inherits the handler but not its thread."""
    sink = logging.FileHandler(tmp_path / "log.txt")
    with logged_through(sink, "fork") as (log, thread):
        pid = os.fork()
        if pid == 0:  # the child: log, write what waits, leave
            log.warning("from the child")
            thread.stop()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        log.warning("from the parent")
        thread.stop()
        sink.close()
        assert sorted((tmp_path / "log.txt").read_text().splitlines()) == [
            "from the child",
            "from the parent",
        ]


class _SlowSink(logging.Handler):
    """A collector that takes its time with each record (a busy machine's stderr)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.05)
        self.written.append(record.getMessage())


def test_records_logged_before_a_flush_are_written_when_it_returns() -> None:
    """A refusal to start logs its reason, then prints its one line: under load the thread
    wrote the record after that line (a CI run's last line was the log record)."""
    sink = _SlowSink()
    with logged_through(sink, "flush") as (log, thread):
        for i in range(3):
            log.warning("line %d", i)
        thread.flush()
        assert sink.written == ["line 0", "line 1", "line 2"]


def test_a_flush_gives_up_on_a_stuck_sink() -> None:
    sink = _StuckSink()
    with logged_through(sink, "flush_stuck") as (log, thread):
        try:
            log.warning("never written")
            started = time.monotonic()
            thread.flush(timeout=0.2)
            assert time.monotonic() - started < 5  # it returned
            assert sink.written == []
        finally:
            sink.released.set()


class _CountingStream(io.StringIO):
    """stderr that counts the writes it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_burst_of_records_is_written_in_a_few_writes_every_line_in_order() -> None:
    """Woken and writing for each record, the thread took the GIL from the event loop a
    thousand times a second under a burst of job ends (BENCHMARKS.md, item 31)."""
    stream = _CountingStream()
    sink = logging.StreamHandler(stream)
    sink.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    with logged_through(sink, "burst") as (log, thread):
        for i in range(200):
            log.warning("line %d", i, extra={"job_id": f"j-{i}"})
        thread.flush()

        assert stream.getvalue().splitlines() == [
            f"WARNING line {i} job_id=j-{i}" for i in range(200)
        ]
        assert stream.writes <= 10


def test_a_backed_up_queue_is_written_without_pausing_between_full_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The thread pauses to let records gather only after the queue ran dry: a pause per
    batch capped it at LOG_BATCH_MAX records per LOG_LINGER_S (found in review)."""
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(logs, "time", SimpleNamespace(sleep=pause, monotonic=time.monotonic))
    monkeypatch.setattr(logs, "LOG_BATCH_MAX", 10)
    monkeypatch.setattr(logs, "LOG_LINGER_S", 0.2)
    stream = _CountingStream()
    with logged_through(logging.StreamHandler(stream), "backlog") as (log, thread):
        for i in range(100):  # the first record wakes the thread; the rest wait in full batches
            log.warning("line %d", i)
        thread.flush(timeout=30)

        assert stream.getvalue().splitlines() == [f"line {i}" for i in range(100)]
        assert len(pauses) <= 2  # not one per batch of ten
