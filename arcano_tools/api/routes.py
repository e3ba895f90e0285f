"""The HTTP contract of the design as a Starlette app (mounted on Reflex's backend with
``api_transformer``, and served alone by ``serve-api`` and the integration tests).

Each route is a small module-level handler that reads the process's :class:`Services` from
the app's state, authenticates through the one dependency :func:`require`, parses, calls a
service and turns its outcome into JSON (``api/replies.py``). A request that fails validation
creates nothing and charges nothing (the core validates before writing).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message, Receive

from arcano_tools import constants as c
from arcano_tools.api.errors import error_response, http_status_of
from arcano_tools.api.replies import job_json, sync_reply, webhook_reply_bytes
from arcano_tools.config import EMULATOR_MOUNT_PATH
from arcano_tools.domain.errors import InvalidInput, JobError, JobNotFound
from arcano_tools.domain.records import FinishRequest, Job, utcnow
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.metrics import CONTENT_TYPE_LATEST
from arcano_tools.runninghub.client import safe_url
from arcano_tools.services.auth import Principal, authenticate
from arcano_tools.services.downloads import content_type_of, download_link_ok, download_name
from arcano_tools.services.follow import follow_job
from arcano_tools.services.uploads import Upload
from arcano_tools.services.webhooks import Delivery, WebhookResult
from arcano_tools.storage import ObjectNotFound, check_key
from arcano_tools.wiring import Services

log = logging.getLogger(__name__)

#: A multipart body may hold two files at the image limit, or one video, plus the fields.
MAX_MULTIPART_BYTES = max(2 * c.MAX_IMAGE_BYTES, c.MAX_UPLOAD_BYTES) + 1024 * 1024
#: Files and plain fields a submit may carry (two inputs at most today; room for growth).
MAX_FORM_FILES = 4
MAX_FORM_FIELDS = 16
#: What JSON replies are sent as (Starlette's ``JSONResponse`` media type).
JSON_MEDIA_TYPE = "application/json"
#: Users remembered as created, per process (then forgotten all at once: a bound, not an LRU).
MAX_ENSURED_USERS_KEPT = 100_000
MSG_UNAUTHORIZED = "Autenticação necessária: envie Authorization: Bearer <token>."
MSG_SERVICE_ONLY = "Somente o serviço pode finalizar jobs."
MSG_OPERATORS_ONLY = "Somente operadores (chave de serviço ou usuário admin)."
MSG_DB_DOWN = "O banco de dados está indisponível no momento. Tente novamente em instantes."
MSG_SYNC_FAILED = "Erro interno ao sincronizar."
MSG_INTERNAL = "Erro interno. Tente novamente em instantes."
MSG_OUTPUT_HOST = "outputUrl must be on one of RunningHub's file hosts (RUNNINGHUB_OUTPUT_HOSTS)"
MSG_AMBIGUOUS_LENGTH = "Envie o arquivo com Content-Length, sem Transfer-Encoding."
MSG_BAD_FORM = "Formulário multipart inválido"
MSG_NUL = "O texto não pode conter o caractere U+0000."
MSG_NO_RESULT = "Resultado não disponível."
#: A signed storage URL handed to a browser lives this long (it is made per request).
SIGNED_URL_TTL_S = 300
#: Bytes read from storage per chunk while streaming a result.
STREAM_CHUNK_BYTES = 256 * 1024
#: U+0000 is in no id we hand out, and PostgreSQL can neither store nor compare it in text (a
#: NUL in a job id was a 503 "database down", a 500 on the sync): answered at the edge.
NUL = "\x00"

Handler = Callable[[Request], Awaitable[Response]]


# --- the one auth dependency ------------------------------------------------------------------


class Access(enum.Enum):
    """Who may call a route."""

    #: Any authenticated caller: a user (their own jobs) or the service key (every job).
    CALLER = enum.auto()
    #: Only the service key (our own backend, operators' scripts).
    SERVICE = enum.auto()
    #: The service key or a user marked admin.
    OPERATOR = enum.auto()


#: What a refused caller is told, per access level.
REFUSAL_MESSAGES = {
    Access.CALLER: MSG_UNAUTHORIZED,
    Access.SERVICE: MSG_SERVICE_ONLY,
    Access.OPERATOR: MSG_OPERATORS_ONLY,
}


class Refused(Exception):
    """A caller without the access a route needs: answered 401 by :func:`_route`."""

    def __init__(self, access: Access, extra: dict[str, Any]) -> None:
        super().__init__(REFUSAL_MESSAGES[access])
        self.extra = extra


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def require(request: Request, access: Access, **refusal_extra: Any) -> Principal:
    """The caller's principal, if it has ``access``; raises :class:`Refused` otherwise.

    ``refusal_extra`` adds fields to the 401 body (the sync endpoint's ``synced: false``).
    """
    services = services_of(request)
    principal = await authenticate(
        request.headers.get("authorization"),
        service_key=services.service_key,
        tokens=services.tokens,
    )
    if principal is not None and await _has_access(services, principal, access):
        return principal
    raise Refused(access, refusal_extra)


async def _has_access(services: Services, principal: Principal, access: Access) -> bool:
    if access is Access.CALLER or principal.is_service:
        return True
    if access is Access.SERVICE:
        return False
    user = await services.store.get_user(principal.user_id or "")
    return user is not None and user.is_admin


def _route(path: str, handler: Handler, methods: list[str]) -> Route:
    """A route whose handler's refusals, core errors, database outages and bugs become clear
    JSON errors (never a stack trace, never plain text)."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as exc:
            return error_response(str(exc), 401, **exc.extra)
        except JobError as exc:
            return error_response(exc.message, http_status_of(exc))
        except (OperationalError, DBAPIError):
            log.exception("database error", extra={"action": "db_error", "path": request.url.path})
            return error_response(MSG_DB_DOWN, 503)
        except Exception:  # a bug: logged with its traceback, answered in the one error shape
            log.exception(
                "unhandled error", extra={"action": "api_error", "path": request.url.path}
            )
            return error_response(MSG_INTERNAL, 500)

    return Route(path, guarded, methods=methods)


async def _read_json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("O corpo da requisição não é JSON válido.") from None
    if not isinstance(body, dict):
        raise InvalidInput("O corpo da requisição deve ser um objeto JSON.")
    return body


def _job_ref_error(services: Services, body: dict[str, Any]) -> Response | None:
    """The plan's checks of ``{table, jobId}``, shared by the sync and ``/finish``."""
    table, job_id = body.get("table"), body.get("jobId")
    if not table or not job_id:
        return error_response("Missing table or jobId", 400)
    if not isinstance(table, str) or services.tools.by_table(table) is None:
        return error_response("Invalid table", 400)
    return None


# --- the plan's edge functions ---------------------------------------------------------------


async def job_sync(request: Request) -> Response:
    """``POST /functions/v1/runninghub-job-sync`` — the plan's sync, with its exact replies."""
    principal = await require(request, Access.CALLER, synced=False)
    services = services_of(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    refused = _job_ref_error(services, body)
    if refused is not None:
        return refused
    job_id = str(body["jobId"])
    try:
        if NUL in job_id:
            raise JobNotFound()
        outcome = await services.sync.sync(body["table"], job_id, principal)
    except JobNotFound:
        return JSONResponse({"error": "Job not found", "synced": False}, status_code=404)
    except Exception:  # the plan's catch-all shape, without leaking the exception text
        log.exception("sync failed", extra={"action": "sync_error"})
        return error_response(MSG_SYNC_FAILED, 500, synced=False)
    status, reply = sync_reply(outcome)
    return JSONResponse(reply, status_code=status)


async def finish(request: Request) -> Response:
    """``POST /functions/v1/runninghub-queue-manager/finish`` — service key only."""
    await require(request, Access.SERVICE)
    services = services_of(request)
    body = await _read_json(request)
    refused = _job_ref_error(services, body)
    if refused is not None:
        return refused
    if NUL in str(body["jobId"]):
        raise JobNotFound()
    try:
        status: JobStatus | None = JobStatus(str(body.get("status")))
    except ValueError:
        status = None
    if status is None or not status.is_terminal:
        return error_response("status must be completed, failed or cancelled", 400)
    output_url, error_message = body.get("outputUrl"), body.get("errorMessage")
    if status is JobStatus.COMPLETED:
        if not isinstance(output_url, str) or NUL in output_url or not safe_url(output_url):
            return error_response(
                "outputUrl (an absolute http(s) URL) is required for completed", 400
            )
        if not services.settings.output_hosts.allows(output_url):
            return error_response(MSG_OUTPUT_HOST, 400)
        error_message = None
    else:
        output_url = None
    if error_message is not None and not isinstance(error_message, str):
        return error_response("errorMessage must be a string", 400)
    if error_message is not None and NUL in error_message:
        return error_response(MSG_NUL, 400)
    by = FinishedBy.WATCHDOG if body.get("syncedViaWatchdog") else FinishedBy.SERVICE
    saving = await _finish_by_saving(
        services, body["table"], str(body["jobId"]), status, output_url, by
    )
    if saving is not None:
        return saving
    result = await services.queue.finish(
        body["table"],
        str(body["jobId"]),
        FinishRequest(status, by, output_url=output_url, error_message=error_message),
    )
    if result.changed and status is not JobStatus.COMPLETED:
        services.queue.cancel_upstream_soon(result.job)
    return JSONResponse(
        {
            "ok": True,
            "changed": result.changed,
            "refunded": result.refunded,
            "job": job_json(result.job),
        }
    )


async def _finish_by_saving(
    services: Services,
    table: str,
    job_id: str,
    status: JobStatus,
    output_url: str | None,
    by: FinishedBy,
) -> Response | None:
    """Results that last on ``/finish``: ``completed`` keeps RunningHub's URL and copies the
    result first (the reply says ``saving``); a job already saving ends only by its copy.
    ``None``: nothing to keep, finish as asked."""
    copier = services.copier
    if copier is None:
        return None
    job = await services.store.get_job(table, job_id)
    if job is None:
        raise JobNotFound()
    if job.saving or (status is JobStatus.COMPLETED and job.status.is_active and output_url):
        if not job.saving and output_url:
            job = (await copier.begin(job, output_url, by)).job
        if job.status.is_active:
            return JSONResponse(
                {
                    "ok": True,
                    "changed": False,
                    "refunded": False,
                    "saving": True,
                    "job": job_json(job),
                }
            )
    return None


# --- jobs API ----------------------------------------------------------------------------------


async def submit(request: Request) -> Response:
    """``POST /api/jobs`` (multipart): check, store, charge and queue one job."""
    principal = await require(request, Access.CALLER)
    if principal.user_id is None:
        return error_response("Envie o token de um usuário para criar trabalhos.", 403)
    if "transfer-encoding" in request.headers and "content-length" in request.headers:
        # with Content-Length too the body's size is ambiguous (RFC 9112 §6.3): an audit sent
        # "Content-Length: 1000" with a chunked gigabyte and the server read it all
        return error_response(MSG_AMBIGUOUS_LENGTH, 400)
    length = request.headers.get("content-length", "")
    if not length.isdigit():  # a chunked body could be any size: refuse before reading
        return error_response("Envie o cabeçalho Content-Length.", 411)
    if int(length) > MAX_MULTIPART_BYTES:
        return error_response("Arquivo grande demais para enviar.", 413)
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        return error_response("Envie os dados como multipart/form-data.", 415)
    fields: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    # never read past the declared length, whatever the server in front of us lets through
    limited = Request(request.scope, _receive_at_most(request.receive, int(length)))
    try:
        async with limited.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads[key] = Upload(value.filename or key, await value.read())
                else:
                    fields[key] = value
    except _BodyTooLong:
        return error_response(MSG_AMBIGUOUS_LENGTH, 400)
    except (MultiPartException, HTTPException) as exc:
        # Starlette's limits (fields, files, a field's size) and unparsable bodies: its
        # plain-text 400 becomes our JSON error (Starlette raises HTTPException in an app)
        detail = exc.message if isinstance(exc, MultiPartException) else exc.detail
        return error_response(f"{MSG_BAD_FORM}: {detail}", 400)
    services = services_of(request)
    ensured: set[str] = request.app.state.ensured_users
    if principal.user_id not in ensured:
        # a user, once created, is never deleted: one write per user and process, not per submit
        await services.store.ensure_user(
            principal.user_id, credits=services.settings.starting_credits
        )
        if len(ensured) >= MAX_ENSURED_USERS_KEPT:
            ensured.clear()
        ensured.add(principal.user_id)
    job = await services.queue.submit(principal.user_id, fields.get("tool", ""), fields, uploads)
    return JSONResponse(
        {"jobId": job.id, "table": job.table, "status": job.status.value}, status_code=201
    )


class _BodyTooLong(Exception):
    """The client sent more bytes than its Content-Length said."""


def _receive_at_most(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`_BodyTooLong` once the body passes ``limit`` bytes."""
    seen = 0

    async def guarded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLong
        return message

    return guarded


async def _owned_job(request: Request) -> Job:
    """The job named by the path, if the caller may see it (else 404: ids cannot be probed)."""
    principal = await require(request, Access.CALLER)
    services = services_of(request)
    table, job_id = request.path_params["table"], request.path_params["job_id"]
    if services.tools.by_table(table) is None or NUL in job_id:
        raise JobNotFound()
    job = await services.store.get_job(table, job_id)
    if job is None or not principal.may_access(job.user_id):
        raise JobNotFound()
    return job


async def get_job(request: Request) -> Response:
    job = await _owned_job(request)
    body = job_json(job)
    body["queuePosition"] = await services_of(request).store.queue_position(job)
    return JSONResponse(body)


async def job_events(request: Request) -> Response:
    """Server-sent events for scripts: the job now, then each change, until it ends.

    Pushed from the job-update bus (every process's updates, with the Redis relay), so a
    webhook shows up at once; a comment every ``SSE_HEARTBEAT_S`` keeps proxies from closing
    a quiet stream, and the job is re-read then in case an update was missed.
    """
    job = await _owned_job(request)
    services = services_of(request)

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
            body = json.dumps(job_json(step.job))
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
    job = await _owned_job(request)
    result = await services_of(request).queue.cancel(job.table, job.id, None)
    return JSONResponse({**job_json(result.job), "refunded": result.refunded})


async def download(request: Request) -> Response:
    """``GET /api/jobs/{table}/{jobId}/download`` — the result as an attachment with a readable
    name, for the owner's token or a short-lived signed link made by the backend for a page."""
    services = services_of(request)
    table, job_id = request.path_params["table"], request.path_params["job_id"]
    signed = download_link_ok(
        services.settings.webhook_secret,
        table,
        job_id,
        request.query_params.get("expires"),
        request.query_params.get("sig"),
        utcnow(),
    )
    if signed:
        found = None
        if services.tools.by_table(table) is not None and NUL not in job_id:
            found = await services.store.get_job(table, job_id)
        if found is None:
            raise JobNotFound()
        job = found
    else:
        job = await _owned_job(request)
    if job.status is not JobStatus.COMPLETED or not job.output_url:
        return error_response(MSG_NO_RESULT, 404)
    name = download_name(job)
    if not job.output_key:  # no copy of ours (copying off, or it failed): RunningHub's link
        return RedirectResponse(job.output_url, status_code=302)
    return await _serve_stored(services, job.output_key, name)


async def result_file(request: Request) -> Response:
    """``GET /files/results/{table}/{name}`` — a stored result, what ``output_url`` points at
    (unguessable by its job id, like RunningHub's links). Supabase: a redirect to a fresh
    signed URL; the local folder: the file."""
    key = f"results/{request.path_params['table']}/{request.path_params['name']}"
    try:
        check_key(key)
    except ValueError:
        raise JobNotFound() from None
    return await _serve_stored(services_of(request), key, None)


async def _serve_stored(services: Services, key: str, name: str | None) -> Response:
    """A stored object: redirected to a signed URL when the storage makes them, else streamed
    (``name``: as an attachment of that name)."""
    storage = services.storage
    try:
        url = await asyncio.to_thread(
            storage.signed_url, key, expires_in_s=SIGNED_URL_TTL_S, download_name=name
        )
        if url is not None:
            return RedirectResponse(url, status_code=302)
        stream = await asyncio.to_thread(storage.open, key)
    except ObjectNotFound:
        return error_response(MSG_NO_RESULT, 404)
    headers = {"Cache-Control": "private, max-age=3600"}
    if name is not None:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    # a file's length (the page's "· 28 KB" asks it with a HEAD; downloads show progress)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        headers["Content-Length"] = str(os.fstat(stream.fileno()).st_size)
    ext = key.rsplit(".", 1)[-1]

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(stream.read, STREAM_CHUNK_BYTES):
                yield chunk
        finally:
            stream.close()

    return StreamingResponse(chunks(), media_type=content_type_of(ext), headers=headers)


async def list_jobs(request: Request) -> Response:
    principal = await require(request, Access.CALLER)
    if principal.user_id is None:
        return JSONResponse({"jobs": []})
    jobs = await services_of(request).store.list_user_jobs(principal.user_id)
    return JSONResponse({"jobs": [job_json(j) for j in jobs]})


async def me(request: Request) -> Response:
    principal = await require(request, Access.CALLER)
    if principal.user_id is None:
        return JSONResponse({"userId": None, "service": True, "credits": None})
    services = services_of(request)
    user = await services.store.ensure_user(
        principal.user_id, credits=services.settings.starting_credits
    )
    return JSONResponse({"userId": user.id, "credits": user.credits})


# --- webhooks (authenticated by the token in their URL, or only a hint) -----------------------


async def webhook(request: Request) -> Response:
    """``POST /webhooks/runninghub/{table}/{jobId}?token=…`` — RunningHub's ``TASK_END``."""
    raw = await _read_limited(request, c.MAX_WEBHOOK_BODY_BYTES)
    if raw is None:
        return error_response("webhook body too large", 413)
    table, job_id = request.path_params["table"], request.path_params["job_id"]
    if NUL in table + job_id:  # never in a URL we hand out, so no token can be right for it
        result = WebhookResult(Delivery.BAD_TOKEN)
    else:
        result = await services_of(request).webhooks.receive(
            table, job_id, _query_value(request, "token"), _nul_free(raw)
        )
    status, body = webhook_reply_bytes(result)
    return Response(body, status_code=status, media_type=JSON_MEDIA_TYPE)


async def webhook_by_task(request: Request) -> Response:
    """``POST /webhooks/runninghub`` — the old-style URL, matched by ``taskId`` and verified."""
    raw = await _read_limited(request, c.MAX_WEBHOOK_BODY_BYTES)
    if raw is None:
        return error_response("webhook body too large", 413)
    result = await services_of(request).webhooks.receive_by_task(_nul_free(raw))
    status, body = webhook_reply_bytes(result, by_job=False)
    return Response(body, status_code=status, media_type=JSON_MEDIA_TYPE)


def _query_value(request: Request, name: str) -> str | None:
    """One query parameter (the last if repeated, as ``request.query_params`` has it), read
    without building the multi-dict of them all: 3 % of a retried webhook's CPU."""
    value = None
    for key, item in parse_qsl(request.scope["query_string"].decode("latin-1"), True):
        if key == name:
            value = item
    return value


def _nul_free(raw: bytes) -> bytes:
    """A body with a NUL byte is no JSON we read (JSON between systems is UTF-8, RFC 8259
    §8.1) and PostgreSQL could not keep it as the recorded text: it is handled as the empty,
    malformed body it amounts to (a bad token still 401, else recorded and answered 400)."""
    return b"" if b"\x00" in raw else raw


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


# --- operations ------------------------------------------------------------------------------------


async def healthz(_request: Request) -> Response:
    return JSONResponse({"ok": True})


async def metrics(request: Request) -> Response:
    await require(request, Access.OPERATOR)
    body = await services_of(request).render_metrics()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _by_method(**handlers: Handler) -> Handler:
    """One route for several methods on a path, so a 405 there lists them all in ``Allow``
    (two routes on ``/api/jobs`` answered ``DELETE`` with ``Allow: POST`` only)."""

    async def dispatch(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    return dispatch


#: Matched in order: RunningHub's webhooks (and their retries) first — the router tried the
#: ten routes above them, a regular expression each, for every delivery.
ROUTES: list[BaseRoute] = [
    _route("/webhooks/runninghub/{table}/{job_id}", webhook, ["POST"]),
    _route("/webhooks/runninghub", webhook_by_task, ["POST"]),
    _route("/functions/v1/runninghub-job-sync", job_sync, ["POST"]),
    _route("/functions/v1/runninghub-queue-manager/finish", finish, ["POST"]),
    _route("/api/jobs", _by_method(GET=list_jobs, POST=submit), ["GET", "POST"]),
    _route("/api/jobs/{table}/{job_id}", get_job, ["GET"]),
    _route("/api/jobs/{table}/{job_id}/cancel", cancel_job, ["POST"]),
    _route("/api/jobs/{table}/{job_id}/download", download, ["GET"]),
    _route("/files/results/{table}/{name}", result_file, ["GET"]),
    _route("/api/jobs/{table}/{job_id}/events", job_events, ["GET"]),
    _route("/api/me", me, ["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    _route("/metrics", metrics, ["GET"]),
]


#: Starlette's own refusals (no such route, a method the route does not take), for people.
ROUTING_MESSAGES = {404: "Rota não encontrada.", 405: "Método não permitido nesta rota."}


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's routing errors as our JSON error shape (its default is plain text)."""
    assert isinstance(exc, HTTPException)
    message = ROUTING_MESSAGES.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def create_api(services: Services, *, manage_lifecycle: bool = True) -> Starlette:
    """The app over one process's services. ``manage_lifecycle`` starts and stops them with
    the app's lifespan (off when Reflex's own lifespan does it)."""
    routes = list(ROUTES)
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

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.services = services
    #: Users this process has already created (``submit`` skips the write for them).
    app.state.ensured_users = set()
    return app
