"""The RunningHub emulator as a Starlette app speaking RunningHub's legacy ``/task/openapi`` API.

Why: the product must run (``make run``) and be tested without the real RunningHub, including
the failures the watchdog plan exists for. The app works mounted under a prefix (the main app
mounts it at ``/_emulator/runninghub``) or alone at the root: every URL it hands out is built
from the request's own base URL and ``root_path``.

Routes (RunningHub's, all ``POST`` answering HTTP 200 with ``{code, msg, data}``):
``/task/openapi/ai-app/run``, ``/task/openapi/create``, ``/task/openapi/status``,
``/task/openapi/outputs``, ``/task/openapi/cancel``, ``/task/openapi/upload``,
``/uc/openapi/accountStatus``. Ours: ``GET /files/{name}`` (outputs), ``GET|POST /_control``,
``GET /_stats``. Endpoint names in ``/_stats`` ``calls``: ``run``, ``create``, ``status``,
``outputs``, ``cancel``, ``upload``, ``accountStatus``, ``files``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URL, UploadFile
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Route

from arcano_tools.constants import MAX_UPLOAD_BYTES
from arcano_tools.emulator.control import ControlError, EmulatorControl, key_prefix
from arcano_tools.emulator.runtime import UPLOAD_HASH_CHARS, EmulatorRuntime
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

log = logging.getLogger("arcano_tools.emulator")

API_KEY_CHARS = 32
_GATEWAY_PAGES = {
    500: "<html><head><title>500 Internal Server Error</title></head><body>"
    "<center><h1>500 Internal Server Error</h1></center><hr><center>nginx</center>"
    "</body></html>",
    502: "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
}
_EXT = re.compile(r"^[a-z0-9]{1,5}$")

Handler = Callable[[Request], Awaitable[Response]]


def _ok(data: Any = None) -> JSONResponse:
    return JSONResponse(envelope(CODE_OK, "success", data))


def _err(code: int, msg: str, data: Any = None) -> JSONResponse:
    """RunningHub answers errors with HTTP 200 and the outcome in ``code``."""
    return JSONResponse(envelope(code, msg, data))


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
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    if isinstance(key, str) and len(key) == API_KEY_CHARS and key.strip() == key:
        return key
    return None


def _unauthorized() -> JSONResponse:
    return _err(CODE_UNAUTHORIZED, "APIKEY_UNAUTHORIZED: missing or invalid apiKey (32 characters)")


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _sniff_ext(head: bytes) -> str:
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return "bin"


def _store_upload(path: Path, data: bytes) -> None:
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)


def create_emulator_app(data_dir: Path, control: EmulatorControl | None = None) -> Starlette:
    """A new, independent emulator storing uploads and outputs under ``data_dir``.

    ``control`` None reads the ``EMULATOR_*`` environment (bad values raise ``ControlError``).
    The runtime is reachable as ``app.state.emulator`` (an :class:`EmulatorRuntime`).
    """
    rt = EmulatorRuntime(Path(data_dir), control or EmulatorControl.from_env())

    def api(name: str) -> Callable[[Handler], Handler]:
        """Count the call and inject the configured 5xx rate (RunningHub API routes only)."""

        def wrap(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                rt.stats.count_call(name)
                stats = rt.stats
                stats.requests_in_flight += 1
                stats.max_requests_in_flight = max(
                    stats.max_requests_in_flight, stats.requests_in_flight
                )
                try:
                    if rt.control.latency_ms:
                        await asyncio.sleep(rt.control.latency_ms / 1000)
                    status = rt.rng.http_error(rt.control.http_error_rate)
                    if status is not None:
                        stats.http_errors += 1
                        return HTMLResponse(_GATEWAY_PAGES[status], status_code=status)
                    return await handler(request)
                finally:
                    stats.requests_in_flight -= 1

            endpoint.__name__ = handler.__name__
            return endpoint

        return wrap

    async def _task_request(request: Request) -> tuple[Task | None, Response | None]:
        body = await _json_body(request)
        if body is None:
            return None, _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: the body must be a JSON object")
        key = _api_key(request, body)
        if key is None:
            return None, _unauthorized()
        task_id = body.get("taskId")
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            return None, _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: taskId is required")
        if request.url.path.endswith("/outputs"):
            rt.stats.outputs_calls_by_task.setdefault(task_id, []).append(time.monotonic())
        task = rt.tasks.get(task_id)
        if task is None or task.api_key != key:  # another key's task is "not found" too
            return None, _err(CODE_TASK_NOT_FOUND, "APIKEY_TASK_NOT_FOUND")
        return task, None

    async def create_task(request: Request, id_field: str) -> Response:
        body = await _json_body(request)
        if body is None:
            return _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: the body must be a JSON object")
        key = _api_key(request, body)
        if key is None:
            return _unauthorized()
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
        try:
            inputs, scale = parse_node_info(spec, body.get("nodeInfoList"), rt.resolve_upload)
        except ValueError as exc:
            return _err(CODE_INVALID_NODE_INFO, f"APIKEY_INVALID_NODE_INFO: {exc}")
        settings = rt.control
        if settings.queue_full_next > 0:
            settings.queue_full_next -= 1
            rt.stats.queue_full_answers += 1
            return _err(CODE_QUEUE_MAXED, "TASK_QUEUE_MAXED")
        cap = settings.key_concurrency
        if cap is not None and rt.unfinished_for(key) >= cap:
            rt.stats.queue_full_answers += 1
            log.info("key %s at its cap of %d tasks: 421", key_prefix(key), cap)
            return _err(CODE_QUEUE_MAXED, "TASK_QUEUE_MAXED")
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

    @api("run")
    async def run(request: Request) -> Response:
        return await create_task(request, "webappId")

    @api("create")
    async def create(request: Request) -> Response:
        return await create_task(request, "workflowId")

    @api("status")
    async def status(request: Request) -> Response:
        task, error = await _task_request(request)
        if task is None:
            return error or _unauthorized()
        return _ok(task.status)

    @api("outputs")
    async def outputs(request: Request) -> Response:
        task, error = await _task_request(request)
        if task is None:
            return error or _unauthorized()
        if task.envelope is not None:
            return JSONResponse(task.envelope)
        return _err(CODE_TASK_RUNNING, "APIKEY_TASK_IS_RUNNING")

    @api("cancel")
    async def cancel(request: Request) -> Response:
        task, error = await _task_request(request)
        if task is None:
            return error or _unauthorized()
        rt.cancel(task)
        return _ok(None)

    @api("upload")
    async def upload(request: Request) -> Response:
        # Refuse absurd bodies before reading them; anything near the limit is read and measured.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > 2 * MAX_UPLOAD_BYTES:
            return _err(CODE_FILE_TOO_LARGE, "APIKEY_FILE_SIZE_EXCEEDED: 30 MB at most")
        try:
            async with request.form(max_files=1, max_fields=10) as form:
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
            return _err(CODE_FILE_TOO_LARGE, "APIKEY_FILE_SIZE_EXCEEDED: 30 MB at most")
        if not data:
            return _err(CODE_PARAMS_INVALID, "PARAMS_INVALID: the file is empty")
        ext = Path(filename).suffix.lower().lstrip(".")
        if ext == "jpeg":
            ext = "jpg"
        if not _EXT.match(ext):
            ext = _sniff_ext(data[:16])
        name = f"{hashlib.sha256(data).hexdigest()[:UPLOAD_HASH_CHARS]}.{ext}"
        await asyncio.to_thread(_store_upload, rt.uploads_dir / name, data)
        return _ok({"fileName": f"api/{name}", "fileType": "input"})

    @api("accountStatus")
    async def account_status(request: Request) -> Response:
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
        rt.stats.count_call("files")
        name = request.path_params["name"]
        path = await asyncio.to_thread(rt.output_path, name)
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path)

    async def control_endpoint(request: Request) -> Response:
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

    async def stats_endpoint(request: Request) -> Response:
        return JSONResponse(rt.stats.to_dict())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await rt.shutdown()

    routes = [
        Route("/task/openapi/ai-app/run", run, methods=["POST"]),
        Route("/task/openapi/create", create, methods=["POST"]),
        Route("/task/openapi/status", status, methods=["POST"]),
        Route("/task/openapi/outputs", outputs, methods=["POST"]),
        Route("/task/openapi/cancel", cancel, methods=["POST"]),
        Route("/task/openapi/upload", upload, methods=["POST"]),
        Route("/uc/openapi/accountStatus", account_status, methods=["POST"]),
        Route("/files/{name}", files, methods=["GET", "HEAD"]),
        Route("/_control", control_endpoint, methods=["GET", "POST"]),
        Route("/_stats", stats_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = rt
    return app


def serve(host: str, port: int, data_dir: Path | None = None) -> None:
    """Run the emulator alone with uvicorn (``python -m arcano_tools emulator`` calls this).

    Without ``data_dir`` the files go to a fresh temporary directory (printed in the log).
    """
    import uvicorn

    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="arcano-emulator-"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    # httpx logs every request URL at INFO, and webhook URLs carry the receiver's secret token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log.info("RunningHub emulator on http://%s:%d, files in %s", host, port, data_dir)
    uvicorn.run(
        create_emulator_app(data_dir),
        host=host,
        port=port,
        ws="none",
        log_level="info",
    )
