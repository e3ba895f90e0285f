"""A local stand-in for Supabase Storage (``/storage/v1``), speaking its documented HTTP wire
format (``../shared/docs/supabase.md`` §3; storage: ``src/http/routes/``,
``src/internal/errors/``), so the real supabase-py client (``storage3``) is the one under test.

What it keeps: buckets and objects in memory (bytes and content type); ``x-upsert``; signed
URLs whose token is a JWT (``url``, ``exp``) signed with the server's secret, honouring
``download`` (served as an attachment); the key check of its gateway (``apikey`` and a bearer
token equal to the service-role key); errors as Storage answers them — HTTP 400 with the real
status as a *string* in the body (``{"statusCode":"404","error":"not_found","message":…}``).

``storage_routes(state)`` is a Starlette route list to mount beside the Auth stand-in
(``tests/support/supabase_auth_server.py``); :func:`running_storage_server` starts one alone on
a free loopback port for a test; ``python -m tests.support.supabase_storage_server --port N``
runs it as a process.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from tests.support.processes import free_port

#: The path Supabase serves Storage under (``<SUPABASE_URL>/storage/v1``).
STORAGE_PREFIX = "/storage/v1"
#: A service-role key the stand-in accepts (any string works for it; this is the tests' one).
SERVICE_ROLE_KEY = "service-role-test-key-" + "r" * 24
#: Storage's gateway answer to a request without an API key (supabase.md, #24).
NO_API_KEY = {"message": "No API key found in request"}


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    created_at: str


@dataclass
class StorageState:
    """Everything the stand-in keeps; tests read it to check what the adapter wrote."""

    service_role_key: str = SERVICE_ROLE_KEY
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    #: Every request as ``(method, path)``, in order.
    requests: list[tuple[str, str]] = field(default_factory=list)


def _error(status: str, error: str, message: str, code: str | None = None) -> JSONResponse:
    """Storage's error body: HTTP 400, the real status a string in ``statusCode``."""
    body = {"statusCode": status, "error": error, "message": message}
    if code:
        body["code"] = code
    return JSONResponse(body, status_code=400)


def _not_found(what: str) -> JSONResponse:
    code = "NoSuchBucket" if what == "Bucket" else "NoSuchKey"
    return _error("404", "not_found", f"{what} not found", code)


def _state(request: Request) -> StorageState:
    state: StorageState = request.app.state.storage
    state.requests.append((request.method, request.url.path))
    return state


def _authorized(request: Request, state: StorageState) -> Response | None:
    """The gateway's and Storage's key checks: ``apikey`` present, bearer = service role."""
    if not request.headers.get("apikey"):
        return JSONResponse(NO_API_KEY, status_code=401)
    auth = request.headers.get("authorization", "")
    if auth != f"Bearer {state.service_role_key}":
        return _error("403", "Unauthorized", "new row violates row-level security policy")
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def create_bucket(request: Request) -> Response:
    state = _state(request)
    if (refused := _authorized(request, state)) is not None:
        return refused
    body = await request.json()
    bucket_id = body.get("id") or body.get("name")
    if bucket_id in state.buckets:
        return _error("409", "Duplicate", "The resource already exists")
    state.buckets[bucket_id] = {
        "id": bucket_id,
        "name": body.get("name") or bucket_id,
        "owner": "",
        "public": bool(body.get("public", False)),
        "file_size_limit": body.get("file_size_limit"),
        "allowed_mime_types": body.get("allowed_mime_types"),
        "created_at": _now(),
        "updated_at": _now(),
    }
    return JSONResponse({"name": bucket_id})


async def get_bucket(request: Request) -> Response:
    state = _state(request)
    if (refused := _authorized(request, state)) is not None:
        return refused
    bucket = state.buckets.get(request.path_params["bucket"])
    return JSONResponse(bucket) if bucket is not None else _not_found("Bucket")


async def object_route(request: Request) -> Response:
    """``POST`` upload (multipart ``file``), ``GET`` download, ``DELETE /object/{bucket}``."""
    state = _state(request)
    if (refused := _authorized(request, state)) is not None:
        return refused
    bucket, path = request.path_params["bucket"], request.path_params.get("path", "")
    if bucket not in state.buckets:
        return _not_found("Bucket")
    if request.method == "DELETE" and not path:
        prefixes = (await request.json()).get("prefixes", [])
        gone = [p for p in prefixes if state.objects.pop((bucket, p), None) is not None]
        return JSONResponse([{"name": p, "bucket_id": bucket} for p in gone])
    if request.method == "GET":
        obj = state.objects.get((bucket, path))
        if obj is None:
            return _not_found("Object")
        return Response(obj.data, media_type=obj.content_type)
    async with request.form() as form:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error("400", "InvalidRequest", "No file part in the request")
        data, content_type = await upload.read(), upload.content_type
    exists = (bucket, path) in state.objects
    if exists and request.headers.get("x-upsert") != "true":
        return _error("409", "Duplicate", "The resource already exists")
    state.objects[(bucket, path)] = StoredObject(
        data, content_type or "text/plain;charset=UTF-8", _now()
    )
    return JSONResponse({"Id": secrets.token_hex(16), "Key": f"{bucket}/{path}"})


async def sign(request: Request) -> Response:
    """``POST /object/sign/{bucket}/{path}`` ``{"expiresIn": "n", "download"?}``."""
    state = _state(request)
    if (refused := _authorized(request, state)) is not None:
        return refused
    bucket, path = request.path_params["bucket"], request.path_params["path"]
    if (bucket, path) not in state.objects:
        return _not_found("Object")
    body = await request.json()
    expires_in = int(body["expiresIn"])
    token = jwt.encode(
        {"url": f"{bucket}/{path}", "exp": int(time.time()) + expires_in},
        state.jwt_secret,
        algorithm="HS256",
    )
    return JSONResponse({"signedURL": f"/object/sign/{bucket}/{quote(path)}?token={token}"})


async def signed_download(request: Request) -> Response:
    """``GET /object/sign/{bucket}/{path}?token=…[&download=name]`` — no keys needed."""
    state = _state(request)
    bucket, path = request.path_params["bucket"], request.path_params["path"]
    try:
        claims = jwt.decode(
            request.query_params.get("token", ""), state.jwt_secret, algorithms=["HS256"]
        )
    except jwt.ExpiredSignatureError:
        return _error("400", "InvalidJWT", "jwt expired")
    except jwt.InvalidTokenError:
        return _error("400", "InvalidJWT", "invalid signature")
    if claims.get("url") != f"{bucket}/{path}":
        return _error("400", "InvalidSignature", "The url do not match the signature")
    obj = state.objects.get((bucket, path))
    if obj is None:
        return _not_found("Object")
    headers = {}
    if "download" in request.query_params:
        name = request.query_params["download"] or path.rsplit("/", 1)[-1]
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(obj.data, media_type=obj.content_type, headers=headers)


async def list_objects(request: Request) -> Response:
    """``POST /object/list/{bucket}`` ``{prefix, limit, offset, sortBy, search}``: the objects
    directly under ``prefix`` whose names start with ``search`` (names relative to ``prefix``),
    sorted by name."""
    state = _state(request)
    if (refused := _authorized(request, state)) is not None:
        return refused
    bucket = request.path_params["bucket"]
    if bucket not in state.buckets:
        return _not_found("Bucket")
    body = await request.json()
    prefix = str(body.get("prefix") or "").strip("/")
    head = f"{prefix}/" if prefix else ""
    search = str(body.get("search") or "").lower()  # Storage: name ILIKE search || '%'
    names = sorted(
        path[len(head) :]
        for (b, path) in state.objects
        if b == bucket
        and path.startswith(head)
        and "/" not in path[len(head) :]
        and path[len(head) :].lower().startswith(search)
    )
    offset, limit = int(body.get("offset", 0)), int(body.get("limit", 100))
    return JSONResponse(
        [
            {
                "name": name,
                "id": secrets.token_hex(16),
                "metadata": {"size": len(state.objects[(bucket, head + name)].data)},
            }
            for name in names[offset : offset + limit]
        ]
    )


def storage_routes() -> list[BaseRoute]:
    """The Storage API's routes, under ``/storage/v1`` (mount beside the Auth stand-in; the
    app's ``state.storage`` must hold a :class:`StorageState`)."""
    return [
        Mount(
            STORAGE_PREFIX,
            routes=[
                Route("/bucket", create_bucket, methods=["POST"]),
                Route("/bucket/{bucket}", get_bucket, methods=["GET"]),
                Route("/object/list/{bucket}", list_objects, methods=["POST"]),
                Route("/object/sign/{bucket}/{path:path}", sign, methods=["POST"]),
                Route("/object/sign/{bucket}/{path:path}", signed_download, methods=["GET"]),
                Route("/object/{bucket}", object_route, methods=["DELETE"]),
                Route("/object/{bucket}/{path:path}", object_route, methods=["GET", "POST"]),
            ],
        )
    ]


def storage_app(state: StorageState | None = None) -> Starlette:
    app = Starlette(routes=storage_routes())
    app.state.storage = state or StorageState()
    return app


@dataclass
class RunningStorage:
    url: str
    state: StorageState


@contextmanager
def running_storage_server(state: StorageState | None = None) -> Iterator[RunningStorage]:
    """The stand-in served by uvicorn in a thread on a free loopback port, for one test."""
    app = storage_app(state)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True, name="supabase-storage")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Supabase Storage stand-in did not start")
        time.sleep(0.01)
    try:
        yield RunningStorage(f"http://127.0.0.1:{port}", app.state.storage)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(storage_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
