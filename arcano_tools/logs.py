"""Structured logging: ``key=value`` text by default, one JSON object per line with
``ARCANO_LOG_FORMAT=json``. Every record may carry ``action``, ``job_id``, ``table``… as
``extra``; secrets never reach a record (the client logs no bodies, keys are never passed).

Records are formatted and written by a thread of their own, not by the event loop that logs
them: writing a line to stderr was a tenth of the loop's work on a first webhook delivery
(BENCHMARKS.md, item 23), and a log collector that stops reading (a full pipe) would have
frozen every request of the process. Up to ``LOG_QUEUE_MAX`` records wait; beyond that they
are counted (``LogThread.dropped``) and not kept, and a normal exit writes what waits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import logging.handlers
import os
import queue
import time
from datetime import UTC, datetime
from typing import Any, cast

#: Records waiting for the logging thread at most (a stalled stderr): later ones are dropped.
LOG_QUEUE_MAX = 10_000
#: How long :func:`flush_logs` waits for the thread at most (a stalled stderr must not hang).
FLUSH_TIMEOUT_S = 2.0
#: How long the logging thread lets records gather before writing them together (a line
#: shows up this much later at most), and how many it writes in one go at most.
LOG_LINGER_S = 0.05
LOG_BATCH_MAX = 1_000

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


class _Listener(logging.handlers.QueueListener):
    """Writes records in batches: after the first of a moment it lets the others gather for
    ``LOG_LINGER_S``, then formats them all and writes them to a stream in one call.

    Woken for each record, the thread took the GIL from the event loop a thousand times a
    second under a burst of job ends, and wrote (and flushed) each line on its own: the one
    "job finished" line was a fifth of a first webhook delivery's CPU (BENCHMARKS.md, item
    31)."""

    def __init__(self, waiting: queue.Queue[Any], handler: logging.Handler) -> None:
        super().__init__(waiting, handler)
        self._waiting = waiting
        self._handler = handler

    def enqueue_sentinel(self) -> None:
        # QueueListener's sentinel (None); put waits for room, the thread writing what waits
        self._waiting.put(None)

    def _monitor(self) -> None:
        waiting = self._waiting
        lingering = True
        while True:
            batch = [waiting.get()]
            if batch[0] is not None and lingering:
                time.sleep(LOG_LINGER_S)
            while len(batch) < LOG_BATCH_MAX and batch[-1] is not None:
                try:
                    batch.append(waiting.get_nowait())
                except queue.Empty:
                    break
            self._write([record for record in batch if record is not None])
            # a full batch: more wait already — no pause until the queue has been emptied (a
            # pause per batch would cap the thread at LOG_BATCH_MAX per LOG_LINGER_S)
            lingering = len(batch) < LOG_BATCH_MAX
            for _ in batch:
                waiting.task_done()
            if batch[-1] is None:  # the sentinel: stop() was called, what waited is written
                return

    def _write(self, records: list[logging.LogRecord]) -> None:
        handler = self._handler
        if type(handler).emit is not logging.StreamHandler.emit:
            for record in records:  # another kind of handler: its own emit, record by record
                self.handle(record)
            return
        stream_handler = cast(logging.StreamHandler[Any], handler)
        lines = []
        for record in records:
            if stream_handler.filter(record):
                try:
                    lines.append(stream_handler.format(record) + stream_handler.terminator)
                except Exception:
                    stream_handler.handleError(record)
        if not lines:
            return
        with stream_handler.lock or contextlib.nullcontext():
            try:
                stream_handler.stream.write("".join(lines))
                stream_handler.flush()
            except Exception:
                stream_handler.handleError(records[-1])


class LogThread(logging.handlers.QueueHandler):
    """Hands records to a thread that formats and writes them (``handler``)."""

    def __init__(self, handler: logging.Handler) -> None:
        waiting: queue.Queue[Any] = queue.Queue(LOG_QUEUE_MAX)
        super().__init__(waiting)
        self.handler = handler
        self.dropped = 0
        self._stopped = False
        self._listener = self._listen(waiting)
        # a forked worker (granian's) inherits no thread: it starts its own, on a new queue
        os.register_at_fork(after_in_child=self._start_in_child)

    def _listen(self, waiting: queue.Queue[Any]) -> _Listener:
        """The thread that writes what ``waiting`` holds, started."""
        listener = _Listener(waiting, self.handler)
        listener.start()
        return listener

    def _start_in_child(self) -> None:
        if not self._stopped:
            waiting: queue.Queue[Any] = queue.Queue(LOG_QUEUE_MAX)
            self.queue = waiting
            self._listener = self._listen(waiting)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The message is made now (its arguments may change later); the formatting is the
        thread's. The record keeps its ``extra`` fields and its exception."""
        record.msg = record.getMessage()
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every record queued so far is written (``timeout`` at most)."""
        waiting = self.queue
        assert isinstance(waiting, queue.Queue)
        deadline = time.monotonic() + timeout
        with waiting.all_tasks_done:  # the thread marks each record done once written
            while waiting.unfinished_tasks and (left := deadline - time.monotonic()) > 0:
                waiting.all_tasks_done.wait(left)

    def stop(self) -> None:
        """Write what waits, then end the thread (at exit, or when logging is set up anew)."""
        if not self._stopped:
            self._stopped = True
            self._listener.stop()


_log_thread: LogThread | None = None


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Install one handler on the ``arcano_tools`` logger (idempotent)."""
    global _log_thread
    logger = logging.getLogger("arcano_tools")
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    if _log_thread is not None:
        _log_thread.stop()
    else:
        atexit.register(_stop_log_thread)
    _log_thread = LogThread(handler)
    logger.handlers[:] = [_log_thread]
    logger.setLevel(level)
    logger.propagate = False
    # httpx logs every URL at INFO; webhook URLs carry per-job tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def lean_records() -> None:
    """For a server process: its log records skip what none of our formatters prints — the
    caller's file, line and function (a walk up the stack for every record), and the
    thread's and the process's names. Each first webhook delivery logs a line (its job's
    end), and making that record was 4 % of the delivery's CPU (BENCHMARKS.md, item 30).
    The switches are the ones the logging HOWTO's "Optimization" section names. Not for the
    tests or the command-line tools: pytest's own log lines print file and line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def flush_logs() -> None:
    """Before a line printed to the same stream (stderr), the records logged until now: a
    process that stops with one line must end with that line, not with a log record the
    thread wrote after it."""
    if _log_thread is not None:
        _log_thread.flush()


def _stop_log_thread() -> None:
    if _log_thread is not None:
        _log_thread.stop()
