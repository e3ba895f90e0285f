"""The emulator's HTTP routes: small module-level handlers over the app's :class:`EmulatorRuntime`.

Each handler reads the runtime of the app it was reached through (:func:`runtime_of`), so one
route list serves any number of independent emulators. RunningHub's own routes go through
:func:`runninghub_endpoint`, which counts them and injects the configured latency and 5xx
answers; ours (files, control, stats) do not, so a test can always read and reset the emulator.

Routes (RunningHub's, all ``POST`` answering HTTP 200 with ``{code, msg, data}``):
``/task/openapi/ai-app/run``, ``/task/openapi/create``, ``/task/openapi/status``,
``/task/openapi/outputs``, ``/task/openapi/cancel``, ``/task/openapi/upload``,
``/uc/openapi/accountStatus``. Ours: ``GET /files/{name}`` (outputs), ``GET|POST /_control``,
``GET /_stats``. Endpoint names in ``/_stats`` ``calls``: ``run``, ``create``, ``status``,
``outputs``, ``cancel``, ``upload``, ``accountStatus``, ``files``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import URL, UploadFile
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from arcano_tools.constants import MAX_UPLOAD_BYTES
from arcano_tools.emulator.control import ControlError, key_prefix
from arcano_tools.emulator.guard import EmulatorGuard
from arcano_tools.emulator.runtime import EmulatorRuntime
from arcano_tools.emulator.tasks import (
    CATALOGUE,
    CODE_FILE_TOO_LARGE,
    CODE_INVALID_NODE_INFO,
    CODE_OK,
    CODE_PARAMS_INVALID,
    CODE_QUEUE_MAXED,
    CODE_TASK_NOT_FOUND,
    CODE_TASK_RUNNING,
    CODE_UNAUTHORIZED,
    Task,
    create_answer,
    envelope,
    parse_node_info,
)
from arcano_tools.emulator.uploads import store_upload, stored_name

log = logging.getLogger("arcano_tools.emulator")

#: RunningHub API keys are 32 characters; the emulator accepts any such key.
API_KEY_CHARS = 32
BEARER_PREFIX = "bearer "
#: A declared body above this is refused unread; up to it the body is read and the file measured
#: (the multipart framing and the other fields make a body somewhat larger than its file).
UPLOAD_UNREAD_LIMIT_BYTES = 2 * MAX_UPLOAD_BYTES
#: An upload carries one file and a few fields (``apiKey``, ``fileType``); refuse more.
UPLOAD_MAX_FILES = 1
UPLOAD_MAX_FIELDS = 10
#: The error pages RunningHub's nginx answers with, for the injected 5xx (``http_error_rate``).
GATEWAY_PAGES = {
    500: "<html><head><title>500 Internal Server Error</title></head><body>"
    "<center><h1>500 Internal Server Error</h1></center><hr><center>nginx</center>"
    "</body></html>",
    502: "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
}
MSG_NOT_AN_OBJECT = "PARAMS_INVALID: the body must be a JSON object"
MSG_UNAUTHORIZED = "APIKEY_UNAUTHORIZED: missing or invalid apiKey (32 characters)"
MSG_FILE_TOO_LARGE = f"APIKEY_FILE_SIZE_EXCEEDED: {MAX_UPLOAD_BYTES // (1024 * 1024)} MB at most"
MSG_QUEUE_MAXED = "TASK_QUEUE_MAXED"
MSG_WEBHOOK_ORIGIN = (
    "PARAMS_INVALID: webhookUrl must point to the backend this emulator serves "
    "(PUBLIC_BASE_URL's origin; loopback when the emulator runs alone)"
)
MSG_CONTROL_KEY = "the emulator's controls need Authorization: Bearer <service key>"

Handler = Callable[[Request], Awaitable[Response]]


# --- shared request plumbing --------------------------------------------------------------------


def guard_of(request: Request) -> EmulatorGuard:
    """Who may steer this emulator and where its webhooks may go (``emulator/guard.py``)."""
    guard: EmulatorGuard = request.app.state.guard
    return guard


def _control_refused(request: Request) -> Response | None:
    if guard_of(request).control_allowed(request.headers.get("authorization")):
        return None
    return JSONResponse({"error": MSG_CONTROL_KEY}, status_code=401)


def runtime_of(request: Request) -> EmulatorRuntime:
    """The runtime of the emulator app this request reached.

    Inside a ``Mount`` this is still the emulator's own: every Starlette app sets
    ``scope["app"]`` to itself on the way in, so ``request.app`` is the innermost app.
    """
    runtime: EmulatorRuntime = request.app.state.emulator
    return runtime


def _ok(data: Any = None) -> JSONResponse:
    return JSONResponse(envelope(CODE_OK, "success", data))


def _err(code: int, msg: str, data: Any = None) -> JSONResponse:
    """RunningHub answers errors with HTTP 200 and the outcome in ``code``."""
    return JSONResponse(envelope(code, msg, data))


def _unauthorized() -> JSONResponse:
    return _err(CODE_UNAUTHORIZED, MSG_UNAUTHORIZED)


def _base_url(request: Request) -> str:
    """This app's absolute base URL, mount prefix included, ending with "/".

    ``request.base_url`` is the *top-level* app's base inside a Mount, so build it from
    ``root_path`` (which a Mount extends with its prefix) instead.
    """
    root = request.scope.get("root_path", "")
    scope = {**request.scope, "path": root.rstrip("/") + "/", "query_string": b""}
    return str(URL(scope=scope))


def _api_key(request: Request, body: dict[str, Any]) -> str | None:
    """The key from the body (``apiKey`` or the doc's ``apikey``) or a Bearer header."""
    key = body.get("apiKey") or body.get("apikey")
    if not key:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith(BEARER_PREFIX):
            key = auth[len(BEARER_PREFIX) :].strip()
    if isinstance(key, str) and len(key) == API_KEY_CHARS and key.strip() == key:
        return key
    return None


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _keyed_body(request: Request) -> tuple[dict[str, Any], str] | Response:
    """A task call's JSON object and its API key, or the answer refusing it (not an object,
    or no valid key)."""
    body = await _json_body(request)
    if body is None:
        return _err(CODE_PARAMS_INVALID, MSG_NOT_AN_OBJECT)
    key = _api_key(request, body)
    if key is None:
        return _unauthorized()
    return body, key


def runninghub_endpoint(name: str) -> Callable[[Handler], Handler]:
    """Make a handler behave like a RunningHub API route: counted as ``name`` in ``/_stats``
    (and in flight while it runs), delayed by ``latency_ms``, and answered with an nginx 5xx
    page at the ``http_error_rate`` — the failures the product's client must survive."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            rt = runtime_of(request)
            stats = rt.stats  # this object even if a reset replaces it meanwhile
            stats.call_began(name)
            try:
                if rt.control.latency_ms:
                    # received first, answered late: a caller that goes away meanwhile (a
                    # killed backend) still gets its task created, as on RunningHub
                    await request.body()
                    await asyncio.sleep(rt.control.latency_ms / 1000)
                status = rt.rng.http_error(rt.control.http_error_rate)
                if status is not None:
                    stats.http_errors += 1
                    return HTMLResponse(GATEWAY_PAGES[status], status_code=status)
                return await handler(request)
            finally:
                stats.call_ended(name)

        return endpoint

    return wrap


# --- creating a task ----------------------------------------------------------------------------


async def _create_task(request: Request, id_field: str) -> Response:
    """``run`` and ``create`` differ only in the body field naming the app."""
    rt = runtime_of(request)
    keyed = await _keyed_body(request)
    if isinstance(keyed, Response):
        return keyed
    body, key = keyed
    app_id = body.get(id_field)
    if app_id is None or app_id == "" or isinstance(app_id, bool):
        return _err(CODE_PARAMS_INVALID, f"PARAMS_INVALID: {id_field} is required")
    spec = CATALOGUE.get(str(app_id))
    if spec is None:
        known = ", ".join(f"{i} ({s.title})" for i, s in CATALOGUE.items())
        return _err(
            CODE_PARAMS_INVALID,
            f"PARAMS_INVALID: unknown {id_field} {str(app_id)!r}; the emulator knows {known}",
        )
    webhook_url = body.get("webhookUrl")
    if webhook_url is not None and not isinstance(webhook_url, str):
        return _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: webhookUrl must be a string")
    if webhook_url and not guard_of(request).webhook_allowed(webhook_url):
        log.warning("webhookUrl refused: not the backend's origin")
        return _err(CODE_PARAMS_INVALID, MSG_WEBHOOK_ORIGIN)
    try:
        inputs, scale = parse_node_info(spec, body.get("nodeInfoList"), rt.resolve_upload)
    except ValueError as exc:
        return _err(CODE_INVALID_NODE_INFO, f"APIKEY_INVALID_NODE_INFO: {exc}")
    settings = rt.control
    if settings.queue_full_next > 0:
        settings.queue_full_next -= 1
        rt.stats.queue_full_answers += 1
        return _err(CODE_QUEUE_MAXED, MSG_QUEUE_MAXED)
    cap = settings.key_concurrency
    if cap is not None and rt.unfinished_for(key) >= cap:
        rt.stats.queue_full_answers += 1
        log.info("key %s at its cap of %d tasks: 421", key_prefix(key), cap)
        return _err(CODE_QUEUE_MAXED, MSG_QUEUE_MAXED)
    task = rt.register(
        api_key=key,
        spec=spec,
        inputs=inputs,
        scale=scale,
        webhook_url=webhook_url or None,
        base_url=_base_url(request),
    )
    if task.settings.webhook == "early" and task.settings.outcome != "never":
        await rt.run_early(task)
    else:
        rt.start(task)
    return JSONResponse(create_answer(task))


@runninghub_endpoint("run")
async def run(request: Request) -> Response:
    return await _create_task(request, "webappId")


@runninghub_endpoint("create")
async def create(request: Request) -> Response:
    return await _create_task(request, "workflowId")


# --- asking about a task ------------------------------------------------------------------------


async def _task_of(request: Request, *, outputs_poll: bool = False) -> Task | Response:
    """The caller's task named by ``taskId``, or the error answer. ``outputs_poll`` records the
    call's time per task id in ``/_stats`` (how often the product polls ``/outputs``)."""
    rt = runtime_of(request)
    keyed = await _keyed_body(request)
    if isinstance(keyed, Response):
        return keyed
    body, key = keyed
    task_id = body.get("taskId")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id:
        return _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: taskId is required")
    if outputs_poll:
        rt.stats.outputs_calls_by_task.setdefault(task_id, []).append(time.monotonic())
    task = rt.tasks.get(task_id)
    if task is None or task.api_key != key:  # another key's task is "not found" too
        return _err(CODE_TASK_NOT_FOUND, "APIKEY_TASK_NOT_FOUND")
    return task


@runninghub_endpoint("status")
async def status(request: Request) -> Response:
    task = await _task_of(request)
    if isinstance(task, Response):
        return task
    return _ok(task.status)


@runninghub_endpoint("outputs")
async def outputs(request: Request) -> Response:
    task = await _task_of(request, outputs_poll=True)
    if isinstance(task, Response):
        return task
    if task.envelope is not None:
        return JSONResponse(task.envelope)
    return _err(CODE_TASK_RUNNING, "APIKEY_TASK_IS_RUNNING")


@runninghub_endpoint("cancel")
async def cancel(request: Request) -> Response:
    task = await _task_of(request)
    if isinstance(task, Response):
        return task
    runtime_of(request).cancel(task)
    return _ok(None)


# --- files and the account ----------------------------------------------------------------------


@runninghub_endpoint("upload")
async def upload(request: Request) -> Response:
    # Refuse absurd bodies before reading them; anything near the limit is read and measured.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > UPLOAD_UNREAD_LIMIT_BYTES:
        return _err(CODE_FILE_TOO_LARGE, MSG_FILE_TOO_LARGE)
    try:
        async with request.form(max_files=UPLOAD_MAX_FILES, max_fields=UPLOAD_MAX_FIELDS) as form:
            key = _api_key(request, {"apiKey": form.get("apiKey") or form.get("apikey")})
            if key is None:
                return _unauthorized()
            file = form.get("file")
            if not isinstance(file, UploadFile):
                return _err(
                    CODE_PARAMS_INVALID, "PARAMS_INVALID: multipart field 'file' is required"
                )
            data = await file.read(MAX_UPLOAD_BYTES + 1)
            filename = file.filename or ""
    except Exception as exc:  # a body that is not multipart: python-multipart's errors vary
        log.info("upload: unreadable form (%s)", type(exc).__name__)
        return _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: expected multipart/form-data")
    if len(data) > MAX_UPLOAD_BYTES:
        return _err(CODE_FILE_TOO_LARGE, MSG_FILE_TOO_LARGE)
    if not data:
        return _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: the file is empty")
    name = stored_name(filename, data)
    await asyncio.to_thread(store_upload, runtime_of(request).uploads_dir / name, data)
    return _ok({"fileName": f"api/{name}", "fileType": "input"})


@runninghub_endpoint("accountStatus")
async def account_status(request: Request) -> Response:
    rt = runtime_of(request)
    body = await _json_body(request)
    key = _api_key(request, body or {})
    if key is None:
        return _unauthorized()
    return _ok(
        {
            "remainCoins": str(rt.balance(key)),
            "currentTaskCounts": str(rt.unfinished_for(key)),
            "remainMoney": "0.00",
            "currency": "CNY",
            "apiType": "NORMAL",
        }
    )


async def files(request: Request) -> Response:
    """An output file; counted, never failed by the API's fault injection (RunningHub's CDN is
    not its API) but by its own ``files`` / ``files_delay_ms`` controls."""
    rt = runtime_of(request)
    rt.stats.count_call("files")
    mode = rt.control.files
    if rt.control.files_delay_ms:
        await asyncio.sleep(rt.control.files_delay_ms / 1000)
    path = await asyncio.to_thread(rt.output_path, request.path_params["name"])
    if path is None or mode == "missing":
        return PlainTextResponse("not found", status_code=404)
    if mode == "error":
        return PlainTextResponse("internal error", status_code=500)
    if mode == "html":
        return HTMLResponse("<html><body>Access denied</body></html>")
    if mode == "corrupt":
        return Response(b"\x89PNG\r\n\x1a\n" + b"not really an image" * 8, media_type="image/png")
    return FileResponse(path)


# --- ours: control and stats --------------------------------------------------------------------


async def control(request: Request) -> Response:
    """``GET`` the fault-injection settings; ``POST`` changes to them (all or nothing)."""
    refused = _control_refused(request)
    if refused is not None:
        return refused
    rt = runtime_of(request)
    if request.method == "POST":
        try:
            changes = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        try:
            current = rt.apply_control(changes)
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        log.info("control changed: %s", ", ".join(sorted(changes)) or "nothing")
        return JSONResponse(current)
    return JSONResponse(rt.control.to_dict())


async def stats(request: Request) -> Response:
    refused = _control_refused(request)
    if refused is not None:
        return refused
    return JSONResponse(runtime_of(request).stats.to_dict())


ROUTES: list[BaseRoute] = [
    Route("/task/openapi/ai-app/run", run, methods=["POST"]),
    Route("/task/openapi/create", create, methods=["POST"]),
    Route("/task/openapi/status", status, methods=["POST"]),
    Route("/task/openapi/outputs", outputs, methods=["POST"]),
    Route("/task/openapi/cancel", cancel, methods=["POST"]),
    Route("/task/openapi/upload", upload, methods=["POST"]),
    Route("/uc/openapi/accountStatus", account_status, methods=["POST"]),
    Route("/files/{name}", files, methods=["GET", "HEAD"]),
    Route("/_control", control, methods=["GET", "POST"]),
    Route("/_stats", stats, methods=["GET"]),
]
