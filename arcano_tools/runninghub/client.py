"""An async client for RunningHub's legacy ``/task/openapi/*`` API.

The wire format is the team's RunningHub API notes (shared docs, outside this repository);
docs/emulator.md lists the endpoints and codes, and the emulator answers them the same way.

It owns its timeouts, retries only transient failures (network, 5xx, code 500) with jittered
exponential backoff, and turns every answer into a typed result or an exception of
:mod:`arcano_tools.runninghub.errors`. The API key travels in the body and the bearer header
(RunningHub accepts both) and never reaches a log line. The HTTP exchange itself is
:mod:`arcano_tools.runninghub.wire`'s: aiohttp in production, an injected httpx transport in
tests and in the simulation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from arcano_tools import constants as c
from arcano_tools.runninghub.errors import (
    APIError,
    HTTPStatusError,
    MalformedResponse,
    RunningHubError,
    UnsendableRequest,
    error_for,
)
from arcano_tools.runninghub.wire import AiohttpWire, HttpxWire, Timeouts, Wire

log = logging.getLogger(__name__)

#: Codes of ``/outputs`` that describe a task's state rather than an error.
CODE_OK = 0
CODE_RUNNING = 804
CODE_FAILED = 805
CODE_QUEUED = 813

DEFAULT_TIMEOUTS = Timeouts(connect=c.RH_CONNECT_TIMEOUT_S, read=c.RH_READ_TIMEOUT_S)
UPLOAD_TIMEOUTS = Timeouts(connect=c.RH_CONNECT_TIMEOUT_S, read=c.RH_UPLOAD_TIMEOUT_S)

TaskState = Literal["success", "running", "queued", "failed"]


@dataclass(frozen=True)
class OutputFile:
    file_url: str
    file_type: str = ""
    node_id: str = ""
    task_cost_time: float | None = None


@dataclass(frozen=True)
class TaskOutputs:
    """What RunningHub says about a task: from ``/outputs`` or from a webhook's ``eventData``."""

    state: TaskState
    code: int
    msg: str = ""
    files: tuple[OutputFile, ...] = ()
    failed_reason: dict[str, Any] | None = None

    @property
    def output_url(self) -> str | None:
        """The plan's rule: the first output with a ``fileUrl``."""
        return next((f.file_url for f in self.files if f.file_url), None)

    @property
    def failure_message(self) -> str:
        """RunningHub's reason in words a person can read (no traceback, no node ids)."""
        reason = self.failed_reason or {}
        text = str(reason.get("exception_message") or "").strip()
        if not text and isinstance(self.failed_reason, dict):
            text = str(reason.get("exception_type") or "").strip()
        return (text or self.msg or "Erro no processamento")[:500]


@dataclass(frozen=True)
class CreatedTask:
    task_id: str
    task_status: str = ""


@dataclass(frozen=True)
class AccountStatus:
    remain_coins: float | None
    current_task_counts: int | None
    raw: dict[str, Any] = field(default_factory=dict)


def parse_outputs_envelope(envelope: Any) -> TaskOutputs:
    """Interpret an ``/outputs`` envelope (also the content of a webhook's ``eventData``).

    Raises :class:`MalformedResponse` for a body that is not an envelope and the typed
    :class:`APIError` for codes that are errors (807 task not found, …).
    """
    if not isinstance(envelope, dict) or "code" not in envelope:
        raise MalformedResponse("RunningHub answered without a code")
    try:
        code = int(envelope["code"])
    except (TypeError, ValueError, OverflowError) as exc:  # Overflow: 1e999 parses as inf
        raise MalformedResponse("RunningHub answered a non-numeric code") from exc
    msg = str(envelope.get("msg") or "")
    data = envelope.get("data")
    if code == CODE_OK:
        files = tuple(
            OutputFile(
                file_url=safe_url(item.get("fileUrl")),
                file_type=str(item.get("fileType") or ""),
                node_id=str(item.get("nodeId") or ""),
                task_cost_time=_float_or_none(item.get("taskCostTime")),
            )
            for item in (data if isinstance(data, list) else [])
            if isinstance(item, dict)
        )
        # code 0 with no file yet happens while outputs are being saved: still processing
        return TaskOutputs(
            "success" if any(f.file_url for f in files) else "running", code, msg, files
        )
    if code == CODE_RUNNING:
        return TaskOutputs("running", code, msg)
    if code == CODE_QUEUED:
        return TaskOutputs("queued", code, msg)
    if code == CODE_FAILED:
        reason = data.get("failedReason") if isinstance(data, dict) else None
        return TaskOutputs(
            "failed", code, msg, failed_reason=reason if isinstance(reason, dict) else None
        )
    raise error_for(code, msg, data)


def safe_url(value: Any) -> str:
    """Only absolute http(s) URLs become an output: the URL ends up in the user's page, so a
    ``javascript:`` or ``data:`` value from a tampered answer is dropped, never shown."""
    url = str(value or "").strip()
    try:
        parsed = urlsplit(url)
    except ValueError:  # an unclosed "[" (IPv6 host) was an exception, a 500 on /finish
        return ""
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return ""
    return url


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


#: Called after every HTTP exchange with (endpoint, outcome): outcome is the envelope's code,
#: ``http_<status>``, or ``transport``. Used for metrics and the operator page.
CallObserver = Callable[[str, str], None]


class RateLimiter:
    """Spaces calls at least ``1/rate`` seconds apart (a leaky bucket without bursts)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


class RunningHubClient:
    """One instance per process; safe to share between tasks.

    Every call passes one concurrency cap and one rate limit, whoever makes it (dispatch,
    page watchdogs, the sync endpoint, the server watchdog): a burst of 100 stuck jobs never
    becomes 100 simultaneous requests to RunningHub.
    """

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        max_retries: int = c.RH_MAX_RETRIES,
        retry_base_s: float = c.RH_RETRY_BASE_S,
        observer: CallObserver | None = None,
        max_concurrency: int = c.UPSTREAM_MAX_CONCURRENCY,
        max_rps: float = c.UPSTREAM_MAX_RPS,
    ) -> None:
        #: An injected transport is a test's or the simulation's; otherwise the network.
        self._wire: Wire = (
            HttpxWire(base_url, transport)
            if transport is not None
            else AiohttpWire(base_url, max_connections=max_concurrency)
        )
        self.timeouts = timeouts
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.observer = observer
        self._concurrency = asyncio.Semaphore(max_concurrency)
        self._rate = RateLimiter(max_rps)

    async def aclose(self) -> None:
        await self._wire.aclose()

    # --- endpoints ------------------------------------------------------------------------

    async def run_app(
        self,
        api_key: str,
        webapp_id: str,
        node_info_list: list[dict[str, str]],
        *,
        webhook_url: str | None = None,
        instance_type: str | None = None,
    ) -> CreatedTask:
        """``/task/openapi/ai-app/run``. Not retried: a lost answer could mean a started task."""
        body: dict[str, Any] = {"webappId": str(webapp_id), "nodeInfoList": node_info_list}
        if webhook_url:
            body["webhookUrl"] = webhook_url
        if instance_type:
            body["instanceType"] = instance_type
        data = await self._call("/task/openapi/ai-app/run", api_key, body, retries=0)
        return _created(data)

    async def outputs(
        self, api_key: str, task_id: str, *, retries: int | None = None
    ) -> TaskOutputs:
        """``/task/openapi/outputs``: the task's state and, when done, its files."""
        envelope = await self._envelope(
            "/task/openapi/outputs", api_key, {"taskId": task_id}, retries=retries
        )
        return parse_outputs_envelope(envelope)

    async def status(self, api_key: str, task_id: str) -> str:
        """``/task/openapi/status``: ``QUEUED`` | ``RUNNING`` | ``SUCCESS`` | ``FAILED``."""
        data = await self._call("/task/openapi/status", api_key, {"taskId": task_id})
        return str(data or "")

    async def cancel(self, api_key: str, task_id: str) -> None:
        """``/task/openapi/cancel``; raises :class:`TaskNotFound` (807) for an unknown task."""
        await self._call("/task/openapi/cancel", api_key, {"taskId": task_id})

    async def upload(self, api_key: str, filename: str, content: bytes, content_type: str) -> str:
        """``/task/openapi/upload``; returns the ``fileName`` to use as a ``fieldValue``."""
        data = await self._call(
            "/task/openapi/upload",
            api_key,
            None,
            files={"file": (filename, content, content_type)},
            form={"apiKey": api_key, "fileType": "input"},
            timeouts=UPLOAD_TIMEOUTS,
        )
        if not isinstance(data, dict) or not data.get("fileName"):
            raise MalformedResponse("RunningHub's upload answered no fileName")
        return str(data["fileName"])

    async def account_status(self, api_key: str) -> AccountStatus:
        """``/uc/openapi/accountStatus`` (the doc spells the key ``apikey``; we send both)."""
        data = await self._call("/uc/openapi/accountStatus", api_key, {"apikey": api_key})
        data = data if isinstance(data, dict) else {}
        coins = _float_or_none(data.get("remainCoins"))
        counts = data.get("currentTaskCounts")
        return AccountStatus(coins, int(counts) if counts is not None else None, data)

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(
        self, path: str, api_key: str, body: dict[str, Any] | None, **options: Any
    ) -> Any:
        """The ``data`` of a successful envelope; any other code raises its typed error."""
        envelope = await self._envelope(path, api_key, body, **options)
        code = _code_of(envelope)
        if code != CODE_OK:
            raise error_for(code, str(envelope.get("msg") or ""), envelope.get("data"))
        return envelope.get("data")

    async def _envelope(
        self,
        path: str,
        api_key: str,
        body: dict[str, Any] | None,
        *,
        retries: int | None = None,
        files: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        timeouts: Timeouts | None = None,
    ) -> dict[str, Any]:
        """POST with retries of transient failures; returns the JSON envelope."""
        endpoint = path.rsplit("/", 1)[-1]
        attempts = 1 + (self.max_retries if retries is None else retries)
        last: RunningHubError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff(attempt))
            try:
                envelope = await self._post_once(
                    path, api_key, body, files, form, timeouts or self.timeouts
                )
            except RunningHubError as exc:
                last = exc
                self._observe(endpoint, _outcome_of(exc))
                if exc.retryable:
                    log.warning(
                        "runninghub call failed, %s",
                        "retrying" if attempt + 1 < attempts else "giving up",
                        extra={"action": "upstream_retry", "endpoint": endpoint, "error": str(exc)},
                    )
                    continue
                raise
            code = _code_of(envelope)
            self._observe(endpoint, str(code))
            if code == 500 and attempt + 1 < attempts:  # RunningHub's "unknown error": transient
                last = error_for(500, str(envelope.get("msg") or ""))
                continue
            return envelope
        assert last is not None
        raise last

    async def _post_once(
        self,
        path: str,
        api_key: str,
        body: dict[str, Any] | None,
        files: dict[str, Any] | None,
        form: dict[str, str] | None,
        timeouts: Timeouts,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {api_key}"}
        if files is not None:
            headers["Content-Type"], content = multipart_form(form or {}, files)
        else:
            headers["Content-Type"] = "application/json"
            content = json.dumps(
                {"apiKey": api_key, **(body or {})},
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,  # NaN is not JSON (httpx refused it too)
            ).encode()
        async with self._concurrency:
            await self._rate.wait()
            answer = await self._wire.post(path, headers, content, timeouts)
        if answer.status >= 400:
            raise HTTPStatusError(answer.status)
        try:
            envelope = json.loads(answer.body)
        except ValueError:  # not JSON, or not text (UnicodeDecodeError)
            raise MalformedResponse("RunningHub answered a body that is not JSON") from None
        if not isinstance(envelope, dict) or "code" not in envelope:
            raise MalformedResponse("RunningHub answered JSON without a code")
        return envelope

    def _backoff(self, attempt: int) -> float:
        base: float = self.retry_base_s * (2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.5)

    def _observe(self, endpoint: str, outcome: str) -> None:
        if self.observer is not None:
            self.observer(endpoint, outcome)


#: What a form's names and file names may not hold as they are, and what each is sent as (the
#: HTML form encoding, as httpx's own multipart encoder writes them).
_FORM_PARAM_ESCAPES = {'"': "%22", "\\": "\\\\"} | {
    chr(code): f"%{code:02X}" for code in range(0x20) if code != 0x1B
}
_FORM_PARAM_SPECIAL = re.compile("|".join(re.escape(ch) for ch in _FORM_PARAM_ESCAPES))
#: Random bytes of a multipart boundary (as httpx draws it).
BOUNDARY_BYTES = 16


def _form_param(name: str, value: str) -> str:
    return f'{name}="{_FORM_PARAM_SPECIAL.sub(lambda m: _FORM_PARAM_ESCAPES[m[0]], value)}"'


def multipart_form(
    form: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
) -> tuple[str, bytes]:
    """``multipart/form-data`` in one piece: its Content-Type and body (the fields, then the
    files as ``(filename, content, content type)``), the bytes httpx's encoder sends.

    httpx's own encoder hands each part's headers, data and separators to the connection as
    separate chunks, each a socket write under its own cancel scope: a third of the CPU of
    a job's start went to sending its input (BENCHMARKS.md, item 19). One ``bytes`` is one
    write; the input is in memory already (at most ``MAX_UPLOAD_BYTES``), the copy is brief.
    """
    boundary = os.urandom(BOUNDARY_BYTES).hex().encode()
    chunks: list[bytes] = []
    for name, value in form.items():
        head = f"Content-Disposition: form-data; {_form_param('name', name)}\r\n\r\n"
        chunks += [b"--", boundary, b"\r\n", head.encode(), value.encode(), b"\r\n"]
    for name, (filename, content, content_type) in files.items():
        head = (
            f"Content-Disposition: form-data; {_form_param('name', name)}; "
            f"{_form_param('filename', filename)}\r\nContent-Type: {content_type}\r\n\r\n"
        )
        chunks += [b"--", boundary, b"\r\n", head.encode(), content, b"\r\n"]
    chunks += [b"--", boundary, b"--\r\n"]
    return f"multipart/form-data; boundary={boundary.decode()}", b"".join(chunks)


def _code_of(envelope: dict[str, Any]) -> int:
    """The envelope's ``code`` as a number (RunningHub documents numbers; "0" is tolerated)."""
    try:
        return int(envelope.get("code"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedResponse("RunningHub answered a non-numeric code") from None


def _outcome_of(exc: RunningHubError) -> str:
    if isinstance(exc, HTTPStatusError):
        return f"http_{exc.http_status}"
    if isinstance(exc, APIError):
        return str(exc.code)
    if isinstance(exc, MalformedResponse):
        return "malformed"
    if isinstance(exc, UnsendableRequest):
        return "unsendable"
    return "transport"


def _created(data: Any) -> CreatedTask:
    if not isinstance(data, dict) or not data.get("taskId"):
        raise MalformedResponse("RunningHub created a task without a taskId")
    return CreatedTask(task_id=str(data["taskId"]), task_status=str(data.get("taskStatus") or ""))
