"""A local Supabase Auth (GoTrue) speaking its documented wire format, for the tests.

Hosted Supabase cannot run here, so this server answers the paths, headers, bodies and error
replies of ``/auth/v1`` as ``../shared/docs/supabase.md`` records them (auth:
internal/api/*.go, errors.go; supabase-py 2.34.1), and the real supabase-py client is the one
under test. ``auth_routes(auth)`` is a list of Starlette routes (to mount beside the Storage
double's ``storage_routes()``); :func:`running_supabase_auth` serves them on a free loopback
port in a thread of the test process, so a test can also reach into the state (confirm an
e-mail, read the outbox of reset links, count JWKS fetches).

Implemented: ``POST /signup``, ``POST /token?grant_type=password|refresh_token``, ``POST
/logout``, ``POST /recover``, ``GET``/``PUT /user``, ``GET /.well-known/jwks.json``; the
documented errors: wrong password (400 ``invalid_credentials``), user exists (422
``user_already_exists``), unconfirmed e-mail (400 ``email_not_confirmed``), weak password (422),
expired or bad token (403 ``bad_jwt``), no token (401 ``no_authorization``), spent or revoked
refresh token (400 ``refresh_token_already_used`` / ``refresh_token_not_found``), no apikey
(401, the gateway's reply). Access tokens are short-lived on demand, signed HS256 with a
secret or ES256 with a key published in the JWKS.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.support.processes import free_port
from tests.support.waiting import wait_for

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"
MIN_PASSWORD_LENGTH = 6
ANON_KEY = "sb_publishable_test_" + "a" * 24
HS256_SECRET = "supabase-test-jwt-secret-" + "x" * 32


@dataclass
class FakeUser:
    id: str
    email: str
    password: str
    confirmed: bool
    created_at: str


@dataclass
class FakeAuth:
    """The server's state and settings (tests change them between calls)."""

    url: str = ""
    anon_key: str = ANON_KEY
    #: ``HS256`` (legacy JWT secret) or ``ES256`` (a signing key, published in the JWKS).
    algorithm: str = "ES256"
    secret: str = HS256_SECRET
    access_ttl_s: int = 3600
    #: Off: sign-up sends a confirmation e-mail and sign-in is refused until it is "opened".
    autoconfirm: bool = True
    users: dict[str, FakeUser] = field(default_factory=dict)
    #: refresh token → (user id, session id, spent?)
    refresh_tokens: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    #: Reset e-mails sent: (address, link).
    outbox: list[tuple[str, str]] = field(default_factory=list)
    jwks_requests: int = 0
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "test-key-" + secrets.token_hex(4)

    # --- what tests call ---------------------------------------------------------------------

    def confirm(self, email: str) -> None:
        """The person opened the confirmation link."""
        self.users[email].confirmed = True

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(  # type: ignore[attr-defined]
            self._private_key.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}

    def token_for(self, user: FakeUser, *, session_id: str, ttl_s: int | None = None) -> str:
        now = int(time.time())
        claims = {
            "sub": user.id,
            "aud": "authenticated",
            "role": "authenticated",
            "iss": self.url + "/auth/v1",
            "iat": now,
            "exp": now + (self.access_ttl_s if ttl_s is None else ttl_s),
            "email": user.email,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "aal": "aal1",
            "session_id": session_id,
            "is_anonymous": False,
        }
        if self.algorithm == "HS256":
            return jwt.encode(claims, self.secret, algorithm="HS256")
        return jwt.encode(claims, self._private_key, algorithm="ES256", headers={"kid": self.kid})

    # --- internals ---------------------------------------------------------------------------

    def _claims(self, token: str) -> dict[str, Any]:
        if self.algorithm == "HS256":
            key: Any = self.secret
        else:
            key = self._private_key.public_key()
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[self.algorithm], audience="authenticated"
        )
        return claims

    def _session(self, user: FakeUser, session_id: str | None = None) -> dict[str, Any]:
        session_id = session_id or str(uuid.uuid4())
        refresh = secrets.token_urlsafe(12)
        self.refresh_tokens[refresh] = (user.id, session_id, False)
        access = self.token_for(user, session_id=session_id)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_ttl_s,
            "expires_at": int(time.time()) + self.access_ttl_s,
            "refresh_token": refresh,
            "user": _user_json(user),
        }

    def _user_by_id(self, user_id: str) -> FakeUser | None:
        return next((u for u in self.users.values() if u.id == user_id), None)


def _user_json(user: FakeUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": user.email,
        "email_confirmed_at": user.created_at if user.confirmed else None,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "identities": [],
        "created_at": user.created_at,
        "updated_at": user.created_at,
        "is_anonymous": False,
    }


def _error(request: Request, status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """GoTrue's error body: the 2024-01-01 shape when the client sent the version header."""
    if request.headers.get(API_VERSION_HEADER):
        return JSONResponse(
            {"code": code, "message": message, **extra},
            status_code=status,
            headers={API_VERSION_HEADER: API_VERSION},
        )
    body = {"code": status, "error_code": code, "msg": message, **extra}
    return JSONResponse(body, status_code=status)


def _weak_password(request: Request) -> JSONResponse:
    """GoTrue's WeakPasswordError carries its reasons (supabase-py reads them)."""
    return _error(
        request,
        422,
        "weak_password",
        f"Password should be at least {MIN_PASSWORD_LENGTH} characters.",
        weak_password={"reasons": ["length"]},
    )


def _gateway_refusal(request: Request, auth: FakeAuth) -> JSONResponse | None:
    """Supabase's API gateway: every Auth call but the JWKS needs the project's key."""
    key = request.headers.get("apikey")
    if not key:
        return JSONResponse({"message": "No API key found in request"}, status_code=401)
    if key != auth.anon_key:
        return JSONResponse({"message": "Invalid API key"}, status_code=401)
    return None


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    data = await request.json()
    return data if isinstance(data, dict) else {}


def _bearer_user(request: Request, auth: FakeAuth) -> tuple[FakeUser, dict[str, Any]] | Response:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token or token == auth.anon_key:
        return _error(
            request, 401, "no_authorization", "This endpoint requires a valid Bearer token"
        )
    try:
        claims = auth._claims(token)
    except jwt.ExpiredSignatureError:
        return _error(
            request,
            403,
            "bad_jwt",
            "invalid JWT: unable to parse or verify signature, token has invalid claims: token is expired",
        )
    except jwt.PyJWTError:
        return _error(request, 403, "bad_jwt", "invalid JWT: unable to parse or verify signature")
    user = auth._user_by_id(str(claims.get("sub")))
    if user is None:
        return _error(request, 403, "user_not_found", "User from sub claim in JWT does not exist")
    return user, claims


def auth_routes(auth: FakeAuth) -> list[BaseRoute]:
    """The ``/auth/v1`` routes over ``auth``'s state."""

    async def signup(request: Request) -> Response:
        auth.requests.append("signup")
        if (refusal := _gateway_refusal(request, auth)) is not None:
            return refusal
        body = await _json(request)
        email = str(body.get("email") or "").strip().lower()
        password = str(body.get("password") or "")
        if "@" not in email:
            return _error(
                request,
                400,
                "validation_failed",
                "Unable to validate email address: invalid format",
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            return _weak_password(request)
        existing = auth.users.get(email)
        if existing is not None:
            if auth.autoconfirm:
                return _error(request, 422, "user_already_exists", "User already registered")
            # with confirmations on GoTrue answers an obfuscated user, so no one learns who
            # has an account
            return JSONResponse({**_user_json(existing), "id": str(uuid.uuid4()), "identities": []})
        user = FakeUser(
            id=str(uuid.uuid4()),
            email=email,
            password=password,
            confirmed=auth.autoconfirm,
            created_at=datetime.now(UTC).isoformat(),
        )
        auth.users[email] = user
        if auth.autoconfirm:
            return JSONResponse(auth._session(user))
        return JSONResponse({**_user_json(user), "confirmation_sent_at": user.created_at})

    async def token(request: Request) -> Response:
        grant = request.query_params.get("grant_type", "")
        auth.requests.append(f"token:{grant}")
        if (refusal := _gateway_refusal(request, auth)) is not None:
            return refusal
        body = await _json(request)
        if grant == "password":
            user = auth.users.get(str(body.get("email") or "").strip().lower())
            if user is None or user.password != body.get("password"):
                return _error(request, 400, "invalid_credentials", "Invalid login credentials")
            if not user.confirmed:
                return _error(request, 400, "email_not_confirmed", "Email not confirmed")
            return JSONResponse(auth._session(user))
        if grant == "refresh_token":
            refresh = str(body.get("refresh_token") or "")
            if not refresh:
                return JSONResponse(
                    {"error": "invalid_request", "error_description": "refresh_token required"},
                    status_code=400,
                )
            entry = auth.refresh_tokens.get(refresh)
            if entry is None:
                return _error(
                    request,
                    400,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                )
            user_id, session_id, spent = entry
            if spent:
                return _error(
                    request,
                    400,
                    "refresh_token_already_used",
                    "Invalid Refresh Token: Already Used",
                )
            auth.refresh_tokens[refresh] = (user_id, session_id, True)
            found = auth._user_by_id(user_id)
            assert found is not None
            return JSONResponse(auth._session(found, session_id))
        return _error(request, 400, "validation_failed", "unsupported_grant_type")

    async def logout(request: Request) -> Response:
        auth.requests.append("logout")
        if (refusal := _gateway_refusal(request, auth)) is not None:
            return refusal
        found = _bearer_user(request, auth)
        if isinstance(found, Response):
            return found
        user, claims = found
        scope = request.query_params.get("scope", "global")
        for refresh, (user_id, session_id, _spent) in list(auth.refresh_tokens.items()):
            if user_id == user.id and (scope == "global" or session_id == claims.get("session_id")):
                del auth.refresh_tokens[refresh]
        return Response(status_code=204)

    async def recover(request: Request) -> Response:
        auth.requests.append("recover")
        if (refusal := _gateway_refusal(request, auth)) is not None:
            return refusal
        body = await _json(request)
        user = auth.users.get(str(body.get("email") or "").strip().lower())
        redirect_to = request.query_params.get("redirect_to", auth.url)
        if user is not None:  # unknown addresses get the same empty answer
            session = auth._session(user)
            fragment = urlencode(
                {
                    "access_token": session["access_token"],
                    "expires_at": session["expires_at"],
                    "expires_in": session["expires_in"],
                    "refresh_token": session["refresh_token"],
                    "token_type": "bearer",
                    "type": "recovery",
                }
            )
            auth.outbox.append((user.email, f"{redirect_to}#{fragment}"))
        return JSONResponse({})

    async def user_endpoint(request: Request) -> Response:
        auth.requests.append(f"user:{request.method}")
        if (refusal := _gateway_refusal(request, auth)) is not None:
            return refusal
        found = _bearer_user(request, auth)
        if isinstance(found, Response):
            return found
        user, _claims = found
        if request.method == "PUT":
            body = await _json(request)
            if "password" in body:
                password = str(body["password"] or "")
                if len(password) < MIN_PASSWORD_LENGTH:
                    return _weak_password(request)
                user.password = password
        return JSONResponse(_user_json(user))

    async def jwks(request: Request) -> Response:
        auth.jwks_requests += 1
        keys = [auth.public_jwk()] if auth.algorithm != "HS256" else []
        return JSONResponse({"keys": keys})

    return [
        Route("/auth/v1/signup", signup, methods=["POST"]),
        Route("/auth/v1/token", token, methods=["POST"]),
        Route("/auth/v1/logout", logout, methods=["POST"]),
        Route("/auth/v1/recover", recover, methods=["POST"]),
        Route("/auth/v1/user", user_endpoint, methods=["GET", "PUT"]),
        Route("/auth/v1/.well-known/jwks.json", jwks, methods=["GET"]),
    ]


@contextmanager
def running_supabase_auth(**settings: Any) -> Iterator[FakeAuth]:
    """Serve :func:`auth_routes` on a free loopback port (a thread of this process)."""
    port = free_port()
    auth = FakeAuth(url=f"http://127.0.0.1:{port}", **settings)
    app = Starlette(routes=auth_routes(auth))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
        )
    )
    thread = threading.Thread(target=server.run, name="fake-supabase-auth", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=10, what="the fake Supabase Auth to listen")
        yield auth
    finally:
        server.should_exit = True
        thread.join(timeout=10)
