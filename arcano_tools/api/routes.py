"""The HTTP contract of ``docs/design.md`` as a Starlette app (mounted on Reflex's backend with
``api_transformer``, and served alone by the integration tests).

Routes stay thin: authenticate, parse, call the job core, map its errors. A request that fails
validation creates nothing and charges nothing (the core validates before writing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from arcano_tools import constants as c
from arcano_tools.config import EMULATOR_MOUNT_PATH
from arcano_tools.core.auth import Principal, authenticate
from arcano_tools.core.errors import InvalidInput, JobError, JobNotFound
from arcano_tools.core.follow import follow_job
from arcano_tools.core.jobs import FinishRequest
from arcano_tools.core.services import Services
from arcano_tools.core.status import FinishedBy, JobStatus
from arcano_tools.core.uploads import Upload
from arcano_tools.metrics import CONTENT_TYPE_LATEST
from arcano_tools.runninghub.client import safe_url

log = logging.getLogger(__name__)

#: A multipart body may hold two files at the image limit, or one video, plus the fields.
MAX_MULTIPART_BYTES = max(2 * c.MAX_IMAGE_BYTES, c.MAX_UPLOAD_BYTES) + 1024 * 1024
MSG_UNAUTHORIZED = "Autenticação necessária: envie Authorization: Bearer <token>."
MSG_DB_DOWN = "O banco de dados está indisponível no momento. Tente novamente em instantes."

Handler = Callable[[Request], Awaitable[Response]]


def _error(message: str, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_api(services: Services, *, manage_lifecycle: bool = True) -> Starlette:
    """Build the app. ``manage_lifecycle`` starts/stops the services with the app's lifespan."""

    def principal_of(request: Request) -> Principal | None:
        return authenticate(
            request.headers.get("authorization"),
            service_key=services.service_key,
            jwt_secret=services.jwt_secret,
        )

    def guarded(handler: Handler) -> Handler:
        """Map core errors and database outages to clear JSON errors (never a stack trace)."""

        async def wrapper(request: Request) -> Response:
            try:
                return await handler(request)
            except JobError as exc:
                return _error(exc.message, exc.http_status)
            except (OperationalError, DBAPIError):
                log.exception(
                    "database error", extra={"action": "db_error", "path": request.url.path}
                )
                return _error(MSG_DB_DOWN, 503)

        return wrapper

    async def read_json(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput("O corpo da requisição não é JSON válido.") from None
        if not isinstance(body, dict):
            raise InvalidInput("O corpo da requisição deve ser um objeto JSON.")
        return body

    # --- the plan's edge functions ---------------------------------------------------------

    async def job_sync(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return _error(MSG_UNAUTHORIZED, 401, synced=False)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        try:
            reply = await services.sync.sync(body.get("table"), body.get("jobId"), principal)
        except Exception:  # the plan's catch-all shape, without leaking the exception text
            log.exception("sync failed", extra={"action": "sync_error"})
            return _error("Erro interno ao sincronizar.", 500, synced=False)
        return JSONResponse(reply.body, status_code=reply.status_code)

    async def finish(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None or not principal.is_service:
            return _error("Somente o serviço pode finalizar jobs.", 401)
        body = await read_json(request)
        table, job_id = body.get("table"), body.get("jobId")
        if not table or not job_id:
            return _error("Missing table or jobId", 400)
        if not isinstance(table, str) or services.tools.by_table(table) is None:
            return _error("Invalid table", 400)
        try:
            status = JobStatus(str(body.get("status")))
        except ValueError:
            status = None
        if status is None or not status.is_terminal:
            return _error("status must be completed, failed or cancelled", 400)
        output_url, error_message = body.get("outputUrl"), body.get("errorMessage")
        if status is JobStatus.COMPLETED:
            if not isinstance(output_url, str) or not safe_url(output_url):
                return _error("outputUrl (an absolute http(s) URL) is required for completed", 400)
            error_message = None
        else:
            output_url = None
        if error_message is not None and not isinstance(error_message, str):
            return _error("errorMessage must be a string", 400)
        by = FinishedBy.WATCHDOG if body.get("syncedViaWatchdog") else FinishedBy.SERVICE
        result = await services.queue.finish(
            table,
            str(job_id),
            FinishRequest(status, by, output_url=output_url, error_message=error_message),
        )
        if result.changed and status is not JobStatus.COMPLETED:
            services.queue.cancel_upstream_soon(result.job)
        return JSONResponse(
            {
                "ok": True,
                "changed": result.changed,
                "refunded": result.refunded,
                "job": result.job.to_api(),
            }
        )

    # --- jobs API -----------------------------------------------------------------------------

    def require_user(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise _Unauthorized
        return principal

    async def submit(request: Request) -> Response:
        principal = require_user(request)
        if principal.user_id is None:
            return _error("Envie o token de um usuário para criar trabalhos.", 403)
        length = request.headers.get("content-length", "")
        if not length.isdigit():  # a chunked body could be any size: refuse before reading
            return _error("Envie o cabeçalho Content-Length.", 411)
        if int(length) > MAX_MULTIPART_BYTES:
            return _error("Arquivo grande demais para enviar.", 413)
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            return _error("Envie os dados como multipart/form-data.", 415)
        fields: dict[str, str] = {}
        uploads: dict[str, Upload] = {}
        async with request.form(max_files=4, max_fields=16) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads[key] = Upload(value.filename or key, await value.read())
                else:
                    fields[key] = value
        await services.store.ensure_user(principal.user_id, credits=c.STARTING_CREDITS)
        job = await services.queue.submit(
            principal.user_id, fields.get("tool", ""), fields, uploads
        )
        return JSONResponse(
            {"jobId": job.id, "table": job.table, "status": job.status.value}, status_code=201
        )

    async def get_owned_job(request: Request) -> Any:
        principal = require_user(request)
        table = request.path_params["table"]
        if services.tools.by_table(table) is None:
            raise JobNotFound()
        job = await services.store.get_job(table, request.path_params["job_id"])
        if job is None or not principal.may_access(job.user_id):
            raise JobNotFound()
        return principal, job

    async def get_job(request: Request) -> Response:
        _, job = await get_owned_job(request)
        body = job.to_api()
        body["queuePosition"] = await services.store.queue_position(job)
        return JSONResponse(body)

    async def job_events(request: Request) -> Response:
        """Server-sent events for scripts: the job now, then each change, until it ends.

        Pushed from the job-update bus (every process's updates, with the Redis relay), so a
        webhook shows up at once; a comment every ``SSE_HEARTBEAT_S`` keeps proxies from
        closing a quiet stream, and the job is re-read then in case an update was missed.
        """
        _, job = await get_owned_job(request)

        async def stream() -> AsyncIterator[str]:
            last = ""
            async for step in follow_job(
                store=services.store,
                bus=services.bus,
                sync=services.sync,
                table=job.table,
                job_id=job.id,
                watchdog_enabled=False,  # the server watchdog already looks after the job
                tick=timedelta(seconds=c.SSE_HEARTBEAT_S),
            ):
                body = json.dumps(step.job.to_api())
                if body == last:
                    yield ": keepalive\n\n"
                    continue
                last = body
                yield f"event: job\ndata: {body}\n\n"
            yield "event: end\ndata: {}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def cancel_job(request: Request) -> Response:
        _principal, job = await get_owned_job(request)
        result = await services.queue.cancel(job.table, job.id, None)
        return JSONResponse({**result.job.to_api(), "refunded": result.refunded})

    async def list_jobs(request: Request) -> Response:
        principal = require_user(request)
        if principal.user_id is None:
            return JSONResponse({"jobs": []})
        jobs = await services.store.list_user_jobs(principal.user_id)
        return JSONResponse({"jobs": [j.to_api() for j in jobs]})

    async def me(request: Request) -> Response:
        principal = require_user(request)
        if principal.user_id is None:
            return JSONResponse({"userId": None, "service": True, "credits": None})
        user = await services.store.ensure_user(principal.user_id, credits=c.STARTING_CREDITS)
        return JSONResponse({"userId": user.id, "credits": user.credits})

    # --- webhooks -----------------------------------------------------------------------------

    async def webhook(request: Request) -> Response:
        raw = await _read_limited(request, c.MAX_WEBHOOK_BODY_BYTES)
        if raw is None:
            return _error("webhook body too large", 413)
        reply = await services.webhooks.receive(
            request.path_params["table"],
            request.path_params["job_id"],
            request.query_params.get("token"),
            raw,
        )
        return JSONResponse(reply.body, status_code=reply.status_code)

    async def webhook_by_task(request: Request) -> Response:
        raw = await _read_limited(request, c.MAX_WEBHOOK_BODY_BYTES)
        if raw is None:
            return _error("webhook body too large", 413)
        reply = await services.webhooks.receive_by_task(raw)
        return JSONResponse(reply.body, status_code=reply.status_code)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def is_operator(principal: Principal | None) -> bool:
        if principal is None:
            return False
        if principal.is_service:
            return True
        user = await services.store.get_user(principal.user_id or "")
        return user is not None and user.is_admin

    async def metrics(request: Request) -> Response:
        if not await is_operator(principal_of(request)):
            return _error("Somente operadores (chave de serviço ou usuário admin).", 401)
        return Response(await services.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    def auth_errors(handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            try:
                return await handler(request)
            except _Unauthorized:
                return _error(MSG_UNAUTHORIZED, 401)

        return wrapper

    def route(path: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, guarded(auth_errors(handler)), methods=methods)

    routes: list[BaseRoute] = [
        route("/functions/v1/runninghub-job-sync", job_sync, ["POST"]),
        route("/functions/v1/runninghub-queue-manager/finish", finish, ["POST"]),
        route("/api/jobs", submit, ["POST"]),
        route("/api/jobs", list_jobs, ["GET"]),
        route("/api/jobs/{table}/{job_id}", get_job, ["GET"]),
        route("/api/jobs/{table}/{job_id}/cancel", cancel_job, ["POST"]),
        route("/api/jobs/{table}/{job_id}/events", job_events, ["GET"]),
        route("/api/me", me, ["GET"]),
        route("/webhooks/runninghub/{table}/{job_id}", webhook, ["POST"]),
        route("/webhooks/runninghub", webhook_by_task, ["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        route("/metrics", metrics, ["GET"]),
    ]
    if services.emulator_app is not None:
        routes.append(Mount(EMULATOR_MOUNT_PATH, app=services.emulator_app))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await services.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await services.stop()

    return Starlette(routes=routes, lifespan=lifespan)


class _Unauthorized(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` past ``limit`` bytes (a webhook is a few KB; refuse floods)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
