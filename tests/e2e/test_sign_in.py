"""Signing in with Supabase Auth in the browser (the real app, Debian chromium): sign up, a
reload keeps the session, the session is refreshed before its short-lived token expires,
sign out, and a wrong password says so in Portuguese. Supabase Auth is the local double
speaking GoTrue's wire format (``tests/support/supabase_auth_server.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from arcano_tools import constants as c
from arcano_tools.services.supabase_auth import AuthSession, SupabaseAuth
from tests.support.supabase_auth_server import FakeAuth, running_supabase_auth
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from playwright.async_api import Page

    from tests.support.reflex_app import RunningApp

pytestmark = pytest.mark.e2e

#: Access tokens live this long, so the page's keeper refreshes one during the test.
ACCESS_TTL_S = 8
EMAIL = "ana@exemplo.com.br"
PASSWORD = "senha-da-ana-123"
READ_TOKEN = "() => (window.localStorage.getItem('arcano_token') || '').replaceAll('\"', '')"


@pytest.fixture(scope="module")
def supabase() -> Iterator[FakeAuth]:
    with running_supabase_auth(access_ttl_s=ACCESS_TTL_S) as auth:
        yield auth


async def signed_in_as_someone(page: Page) -> None:
    await page.get_by_test_id("sign-out").wait_for()
    await page.wait_for_function(
        "(p) => new RegExp('^' + p + ' créditos$')"
        ".test(document.querySelector('#credits')?.textContent || '')",
        arg=str(c.STARTING_CREDITS),
    )


async def test_sign_up_reload_refresh_sign_out_and_a_wrong_password(
    reflex_app_factory: Callable[..., RunningApp], supabase: FakeAuth, page: Page
) -> None:
    app = reflex_app_factory({"SUPABASE_URL": supabase.url, "SUPABASE_ANON_KEY": supabase.anon_key})
    # signed out: the menu offers "Entrar", nobody gets anonymous credits
    await page.goto(app.url + "/")
    await page.get_by_test_id("sign-in-link").wait_for()
    assert await page.evaluate(READ_TOKEN) == ""

    # sign up → signed in on the home page, with the demo's credits
    await page.goto(app.url + "/criar-conta")
    await page.get_by_label("E-mail").fill(EMAIL)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_test_id("sign-up").click()
    await signed_in_as_someone(page)
    user_id = supabase.users[EMAIL].id
    first_token = await page.evaluate(READ_TOKEN)
    assert first_token

    # a reload is the same person
    await page.reload()
    await signed_in_as_someone(page)

    # the page refreshes the session before the token expires: a new token, still signed in
    await page.wait_for_function(
        f"(t) => ({READ_TOKEN})() !== '' && ({READ_TOKEN})() !== t",
        arg=first_token,
        timeout=(ACCESS_TTL_S + 10) * 1000,
    )
    assert "token:refresh_token" in supabase.requests
    await page.reload()
    await signed_in_as_someone(page)

    # sign out: the refresh tokens are revoked on Supabase, the browser forgets the session
    await page.get_by_test_id("sign-out").click()
    await page.get_by_test_id("sign-in").wait_for()
    await page.wait_for_function(f"() => ({READ_TOKEN})() === ''")
    wait_for(
        lambda: all(uid != user_id for uid, _, _ in supabase.refresh_tokens.values()),
        what="the session's refresh tokens to be revoked",
    )

    # a wrong password is a clear Portuguese error, and nobody is signed in
    await page.get_by_label("E-mail").fill(EMAIL)
    await page.get_by_label("Senha").fill("senha-errada")
    await page.get_by_test_id("sign-in").click()
    error = page.get_by_test_id("auth-error")
    await error.wait_for()
    assert "E-mail ou senha incorretos." in await error.inner_text()
    assert await page.evaluate(READ_TOKEN) == ""

    # the right one signs in again
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_test_id("sign-in").click()
    await signed_in_as_someone(page)


async def test_a_forgotten_password_is_reset_from_the_emailed_link(
    reflex_app_factory: Callable[..., RunningApp], supabase: FakeAuth, page: Page
) -> None:
    app = reflex_app_factory({"SUPABASE_URL": supabase.url, "SUPABASE_ANON_KEY": supabase.anon_key})
    email = "bia@exemplo.com.br"
    made = await SupabaseAuth(supabase.url, supabase.anon_key).sign_up(email, "senha-antiga-1")
    assert isinstance(made, AuthSession)

    await page.goto(app.url + "/recuperar-senha")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_test_id("send-reset").click()
    await page.get_by_test_id("auth-notice").wait_for()
    links = [link for to, link in supabase.outbox if to == email]
    assert len(links) == 1
    assert links[0].startswith(app.url + "/nova-senha#")

    # the e-mail's link: the page takes the recovery tokens from the address's fragment
    await page.goto(links[0])
    await page.get_by_label("Nova senha", exact=True).fill("senha-nova-22")
    await page.get_by_label("Repita a nova senha", exact=True).fill("senha-nova-22")
    await page.get_by_test_id("set-password").click()
    await signed_in_as_someone(page)
    assert "access_token" not in page.url
    assert supabase.users[email].password == "senha-nova-22"
