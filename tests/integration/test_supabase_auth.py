"""The Supabase Auth adapter (the real supabase-py client) against a local server speaking
GoTrue's wire format: sign-up, sign-in, refresh, sign-out, password reset, and the documented
failures, each turned into a Portuguese message; its tokens verified locally by our API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from arcano_tools import constants as c
from arcano_tools.services.auth import TokenVerifier
from arcano_tools.services.signing_keys import SigningKeys
from arcano_tools.services.supabase_auth import (
    AuthFailure,
    AuthProblem,
    AuthSession,
    ConfirmationSent,
    SupabaseAuth,
)
from arcano_tools.tls import client_tls
from arcano_tools.web import session
from tests.support.images import png_bytes
from tests.support.processes import ServerProcess
from tests.support.servers import Backend, start_backend
from tests.support.supabase_auth_server import FakeAuth, running_supabase_auth
from tests.support.waiting import wait_for

PASSWORD = "senha-forte-123"
#: A lifetime that makes the access token expired when issued: the page is loaded an hour
#: later, without the test waiting for it (the wait itself is tested once, above).
EXPIRED_AT_ISSUE_S = -3600


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAuth]:
    with running_supabase_auth() as auth:
        yield auth


@pytest.fixture
def fake(server: FakeAuth) -> Iterator[FakeAuth]:
    """The module's server, reset to its defaults after each test."""
    yield server
    server.autoconfirm = True
    server.access_ttl_s = 3600
    server.algorithm = "ES256"


def adapter(fake: FakeAuth) -> SupabaseAuth:
    return SupabaseAuth(fake.url, fake.anon_key)


def verifier(fake: FakeAuth) -> TokenVerifier:
    return TokenVerifier(
        fake.secret, SigningKeys.from_supabase(fake.url), issuer=fake.url + "/auth/v1"
    )


_n = iter(range(10**6))


def new_email() -> str:
    return f"pessoa{next(_n)}-{time.monotonic_ns()}@exemplo.com.br"


async def test_sign_up_gives_a_session_whose_token_verifies_locally(fake: FakeAuth) -> None:
    email = new_email()
    session = await adapter(fake).sign_up(email, PASSWORD)
    assert isinstance(session, AuthSession)
    assert session.email == email
    assert session.user_id == fake.users[email].id
    tokens = verifier(fake)
    before = fake.jwks_requests
    for _ in range(5):
        assert await tokens.user_id(session.access_token) == session.user_id
    assert fake.jwks_requests - before == 1  # fetched once, then cached


async def test_signing_up_twice_says_the_account_exists(fake: FakeAuth) -> None:
    email = new_email()
    assert isinstance(await adapter(fake).sign_up(email, PASSWORD), AuthSession)
    again = await adapter(fake).sign_up(email, PASSWORD)
    assert again == AuthFailure(AuthProblem.USER_EXISTS)
    assert "Já existe uma conta" in again.message


async def test_a_weak_password_is_refused_with_a_reason(fake: FakeAuth) -> None:
    failure = await adapter(fake).sign_up(new_email(), "123")
    assert failure == AuthFailure(AuthProblem.WEAK_PASSWORD)


async def test_sign_in_with_the_wrong_password_is_a_clear_error(fake: FakeAuth) -> None:
    email = new_email()
    await adapter(fake).sign_up(email, PASSWORD)
    failure = await adapter(fake).sign_in(email, "outra-senha")
    assert failure == AuthFailure(AuthProblem.WRONG_PASSWORD)
    assert failure.message == "E-mail ou senha incorretos."
    assert await adapter(fake).sign_in("ninguem@exemplo.com.br", PASSWORD) == failure


async def test_an_unconfirmed_email_cannot_sign_in_until_confirmed(fake: FakeAuth) -> None:
    fake.autoconfirm = False
    email = new_email()
    assert await adapter(fake).sign_up(email, PASSWORD) == ConfirmationSent(email)
    refused = await adapter(fake).sign_in(email, PASSWORD)
    assert refused == AuthFailure(AuthProblem.EMAIL_NOT_CONFIRMED)
    fake.confirm(email)
    assert isinstance(await adapter(fake).sign_in(email, PASSWORD), AuthSession)


async def test_an_expired_access_token_is_refused_and_a_refresh_renews_it(fake: FakeAuth) -> None:
    fake.access_ttl_s = 2
    email = new_email()
    session = await adapter(fake).sign_up(email, PASSWORD)
    assert isinstance(session, AuthSession)
    tokens = verifier(fake)
    assert await tokens.user_id(session.access_token) == session.user_id
    wait_for(lambda: time.time() > session.expires_at + 1, timeout=5, what="the token to expire")
    assert await tokens.user_id(session.access_token) is None
    # the server refuses it too (403 bad_jwt), and says so in its documented shape
    async with httpx.AsyncClient() as http:
        r = await http.get(
            fake.url + "/auth/v1/user",
            headers={"apikey": fake.anon_key, "Authorization": f"Bearer {session.access_token}"},
        )
    assert r.status_code == 403
    assert r.json()["error_code"] == "bad_jwt"
    renewed = await adapter(fake).refresh(session.refresh_token)
    assert isinstance(renewed, AuthSession)
    assert renewed.user_id == session.user_id
    assert await tokens.user_id(renewed.access_token) == session.user_id


async def test_a_refresh_token_is_single_use(fake: FakeAuth) -> None:
    session = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(session, AuthSession)
    assert isinstance(await adapter(fake).refresh(session.refresh_token), AuthSession)
    again = await adapter(fake).refresh(session.refresh_token)
    assert again == AuthFailure(AuthProblem.SESSION_EXPIRED)
    assert again.message == "Sua sessão expirou. Entre novamente."


async def test_sign_out_revokes_the_refresh_token(fake: FakeAuth) -> None:
    session = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(session, AuthSession)
    assert await adapter(fake).sign_out(session.access_token) is None
    assert await adapter(fake).refresh(session.refresh_token) == AuthFailure(
        AuthProblem.SESSION_EXPIRED
    )


async def test_password_reset_link_sets_a_new_password(fake: FakeAuth) -> None:
    """With short-lived tokens too: supabase-py refreshes a session near expiry by itself,
    so the session handed back must be the client's latest (its refresh token unspent)."""
    fake.access_ttl_s = 8
    email = new_email()
    await adapter(fake).sign_up(email, PASSWORD)
    redirect = "http://127.0.0.1:3000/nova-senha"
    assert await adapter(fake).send_password_reset(email, redirect) is None
    assert await adapter(fake).send_password_reset("ninguem@exemplo.com.br", redirect) is None
    sent = [link for to, link in fake.outbox if to == email]
    assert len(sent) == 1
    assert sent[0].startswith(redirect + "#")
    fragment = parse_qs(urlsplit(sent[0]).fragment)
    assert fragment["type"] == ["recovery"]
    session = await adapter(fake).set_password(
        fragment["access_token"][0], fragment["refresh_token"][0], "nova-senha-456"
    )
    assert isinstance(session, AuthSession)
    assert isinstance(await adapter(fake).refresh(session.refresh_token), AuthSession)
    assert await adapter(fake).sign_in(email, PASSWORD) == AuthFailure(AuthProblem.WRONG_PASSWORD)
    assert isinstance(await adapter(fake).sign_in(email, "nova-senha-456"), AuthSession)


async def test_hs256_projects_verify_with_the_jwt_secret(fake: FakeAuth) -> None:
    fake.algorithm = "HS256"
    session = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(session, AuthSession)
    assert await TokenVerifier(fake.secret).user_id(session.access_token) == session.user_id
    assert await TokenVerifier("another-" + fake.secret).user_id(session.access_token) is None


async def test_a_wrong_anon_key_and_a_server_down_are_failures_not_crashes(fake: FakeAuth) -> None:
    wrong_key = await SupabaseAuth(fake.url, "wrong-key").sign_in(new_email(), PASSWORD)
    assert isinstance(wrong_key, AuthFailure)
    down = await SupabaseAuth("http://127.0.0.1:9", fake.anon_key, timeout_s=2).sign_in(
        new_email(), PASSWORD
    )
    assert down == AuthFailure(AuthProblem.UNAVAILABLE)


# --- our HTTP API accepts Supabase's access tokens ----------------------------------------------


@pytest.fixture(scope="module")
def api_on_supabase(
    server: FakeAuth, emulator: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Our API (production-shaped) with the project's URL and anon key set."""
    b = start_backend(
        emulator.url,
        tmp_path_factory.mktemp("api-supabase"),
        extra_env={"SUPABASE_URL": server.url, "SUPABASE_ANON_KEY": server.anon_key},
    )
    yield b
    b.api.stop()


async def test_the_api_ties_credits_and_jobs_to_the_supabase_user(
    fake: FakeAuth, api_on_supabase: Backend
) -> None:
    alice = await adapter(fake).sign_up(new_email(), PASSWORD)
    bob = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(alice, AuthSession)
    assert isinstance(bob, AuthSession)
    before = fake.jwks_requests
    as_alice = {"Authorization": f"Bearer {alice.access_token}"}
    async with httpx.AsyncClient(
        verify=client_tls(), base_url=api_on_supabase.url, timeout=30
    ) as http:
        me = await http.get("/api/me", headers=as_alice)
        assert me.status_code == 200, me.text
        assert me.json() == {"userId": alice.user_id, "credits": c.STARTING_CREDITS}
        created = await http.post(
            "/api/jobs",
            headers=as_alice,
            data={"tool": "upscaler", "scale": "2"},
            files={"image": ("foto.png", png_bytes(), "image/png")},
        )
        assert created.status_code == 201, created.text
        job_path = f"/api/jobs/upscaler_jobs/{created.json()['jobId']}"
        assert (await http.get(job_path, headers=as_alice)).status_code == 200
        as_bob = {"Authorization": f"Bearer {bob.access_token}"}
        assert (await http.get(job_path, headers=as_bob)).status_code == 404
        for _ in range(10):
            assert (await http.get("/api/me", headers=as_alice)).status_code == 200
        forged = alice.access_token[:-4] + ("AAAA" if alice.access_token[-4:] != "AAAA" else "BBBB")
        assert (
            await http.get("/api/me", headers={"Authorization": f"Bearer {forged}"})
        ).status_code == 401
    # the API process fetched the project's keys once for all these requests
    assert fake.jwks_requests - before == 1
    rows = api_on_supabase.rows("SELECT user_id FROM upscaler_jobs")
    assert rows == [(alice.user_id,)]


# --- a browser's session on a page load (web/session.py) ----------------------------------------


def browser_services(fake: FakeAuth, auth: SupabaseAuth | None = None) -> Any:
    """What ``session.resolve`` uses of the process's services: the verifier and the adapter."""
    return SimpleNamespace(tokens=verifier(fake), auth=auth or adapter(fake))


async def test_a_fresh_session_is_kept_without_calling_supabase(fake: FakeAuth) -> None:
    s = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(s, AuthSession)
    calls = len(fake.requests)
    browser = await session.resolve(browser_services(fake), s.access_token, s.refresh_token)
    assert browser == session.BrowserSession(s.user_id, s.access_token, s.refresh_token)
    assert len(fake.requests) == calls


async def test_an_expired_session_is_refreshed_on_load_and_a_spent_one_signs_out(
    fake: FakeAuth,
) -> None:
    fake.access_ttl_s = EXPIRED_AT_ISSUE_S
    s = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(s, AuthSession)
    fake.access_ttl_s = 3600  # the refreshed token is a normal one
    services = browser_services(fake)
    renewed = await session.resolve(services, s.access_token, s.refresh_token)
    assert renewed.user_id == s.user_id
    assert renewed.refresh_token not in ("", s.refresh_token)
    # the old pair again (another tab's stale copy): the refresh token is spent → signed out
    assert await session.resolve(services, s.access_token, s.refresh_token) == (
        session.BrowserSession(None, "", "")
    )


async def test_supabase_down_keeps_the_tokens_for_a_later_try(fake: FakeAuth) -> None:
    fake.access_ttl_s = EXPIRED_AT_ISSUE_S
    s = await adapter(fake).sign_up(new_email(), PASSWORD)
    assert isinstance(s, AuthSession)
    down = SupabaseAuth("http://127.0.0.1:9", fake.anon_key, timeout_s=2)
    kept = await session.resolve(browser_services(fake, down), s.access_token, s.refresh_token)
    assert kept == session.BrowserSession(None, s.access_token, s.refresh_token)
