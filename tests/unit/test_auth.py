"""Who is calling: Supabase-style HS256 user tokens, the service key, and job ownership."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from arcano_tools import constants as c
from arcano_tools.services.auth import (
    SUPABASE_AUDIENCE,
    SUPABASE_ROLE,
    Principal,
    TokenVerifier,
    authenticate,
    issue_user_token,
    verify_user_token,
)

# HS256 keys of 32+ bytes: PyJWT warns about shorter ones (and warnings are errors here).
SECRET = "jwt-secret-" + "0123456789abcdef" * 3
OTHER_SECRET = "another-secret-" + "fedcba9876543210" * 3
SERVICE_KEY = "svc_" + "Zx81-kq_PLm2" * 4
USER_ID = "6f1c2a9e-3b7d-4c1e-9a55-0d2f8e7b1c33"


def token_with(**claims: object) -> str:
    """A token signed with SECRET carrying exactly ``claims`` (None values are dropped)."""
    now = int(time.time())
    base: dict[str, object] = {
        "sub": USER_ID,
        "role": SUPABASE_ROLE,
        "aud": SUPABASE_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    base.update(claims)
    payload = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def auth(header: str | None) -> Principal | None:
    return asyncio.run(authenticate(header, service_key=SERVICE_KEY, tokens=TokenVerifier(SECRET)))


# --- issue / verify ---------------------------------------------------------------------------


def test_an_issued_token_verifies_to_its_user_id() -> None:
    token = issue_user_token(SECRET, USER_ID)
    assert verify_user_token(SECRET, token) == USER_ID


def test_an_issued_token_has_supabases_claims_and_the_default_lifetime() -> None:
    before = int(time.time())
    token = issue_user_token(SECRET, USER_ID)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == USER_ID
    assert claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert before <= claims["iat"] <= before + 2
    assert claims["exp"] - claims["iat"] == c.USER_TOKEN_TTL_S


def test_a_token_made_by_supabase_with_extra_claims_verifies() -> None:
    token = token_with(email="a@example.com", session_id="s1", aal="aal1")
    assert verify_user_token(SECRET, token) == USER_ID


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = issue_user_token(OTHER_SECRET, USER_ID)
    assert verify_user_token(SECRET, token) is None


def test_an_expired_token_is_refused() -> None:
    token = issue_user_token(SECRET, USER_ID, ttl_s=-10)
    assert verify_user_token(SECRET, token) is None


def test_a_token_for_another_audience_is_refused() -> None:
    assert verify_user_token(SECRET, token_with(aud="anon")) is None


def test_a_token_without_an_audience_is_refused() -> None:
    assert verify_user_token(SECRET, token_with(aud=None)) is None


@pytest.mark.parametrize("role", ["anon", "service_role", None])
def test_a_token_with_another_role_is_refused(role: str | None) -> None:
    assert verify_user_token(SECRET, token_with(role=role)) is None


def test_a_token_without_a_subject_is_refused() -> None:
    assert verify_user_token(SECRET, token_with(sub=None)) is None


def test_a_token_without_an_expiry_is_refused() -> None:
    assert verify_user_token(SECRET, token_with(exp=None)) is None


def test_a_token_whose_subject_is_not_a_string_is_refused() -> None:
    assert verify_user_token(SECRET, token_with(sub=12345)) is None


def test_an_unsigned_token_is_refused() -> None:
    now = int(time.time())
    claims = {"sub": USER_ID, "role": "authenticated", "aud": "authenticated", "exp": now + 60}
    token = jwt.encode(claims, None, algorithm="none")
    assert verify_user_token(SECRET, token) is None


def test_a_token_signed_with_hs512_is_refused() -> None:
    now = int(time.time())
    claims = {"sub": USER_ID, "role": "authenticated", "aud": "authenticated", "exp": now + 60}
    token = jwt.encode(claims, SECRET + SECRET, algorithm="HS512")
    assert verify_user_token(SECRET + SECRET, token) is None


def test_a_tampered_payload_is_refused() -> None:
    header, _payload, signature = issue_user_token(SECRET, USER_ID).split(".")
    forged_payload = jwt.utils.base64url_encode(
        b'{"sub":"someone-else","role":"authenticated","aud":"authenticated","exp":9999999999}'
    ).decode()
    assert verify_user_token(SECRET, f"{header}.{forged_payload}.{signature}") is None


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "....", "é.é.é"])
def test_garbage_is_not_a_token(garbage: str) -> None:
    assert verify_user_token(SECRET, garbage) is None


# --- authenticate -----------------------------------------------------------------------------


def test_the_service_key_authenticates_as_the_service() -> None:
    principal = auth(f"Bearer {SERVICE_KEY}")
    assert principal == Principal(user_id=None, is_service=True)


def test_the_bearer_scheme_is_case_insensitive_and_surrounding_spaces_are_ignored() -> None:
    assert auth(f"bearer {SERVICE_KEY}") == Principal(is_service=True)
    assert auth(f"BEARER   {SERVICE_KEY}  ") == Principal(is_service=True)


@pytest.mark.parametrize(
    "near_miss",
    [SERVICE_KEY[:-1], SERVICE_KEY + "x", SERVICE_KEY.upper(), "x" + SERVICE_KEY[1:]],
    ids=["shorter", "longer", "case", "first-char"],
)
def test_a_near_miss_of_the_service_key_is_refused(near_miss: str) -> None:
    assert auth(f"Bearer {near_miss}") is None


def test_a_user_token_authenticates_as_that_user() -> None:
    principal = auth(f"Bearer {issue_user_token(SECRET, USER_ID)}")
    assert principal == Principal(user_id=USER_ID, is_service=False)


def test_a_user_token_signed_with_another_secret_is_refused() -> None:
    assert auth(f"Bearer {issue_user_token(OTHER_SECRET, USER_ID)}") is None


def test_an_expired_user_token_is_refused() -> None:
    assert auth(f"Bearer {issue_user_token(SECRET, USER_ID, ttl_s=-1)}") is None


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer garbage",
        "Bearer é-not-ascii",
        f"Basic {SERVICE_KEY}",
        f"Token {SERVICE_KEY}",
        SERVICE_KEY,
        f"Bearer{SERVICE_KEY}",
    ],
    ids=[
        "missing",
        "empty",
        "scheme-only",
        "scheme-space",
        "scheme-spaces",
        "garbage",
        "non-ascii",
        "basic",
        "token",
        "bare-key",
        "no-space",
    ],
)
def test_a_missing_garbage_or_non_bearer_header_is_refused(header: str | None) -> None:
    assert auth(header) is None


def test_an_empty_service_key_never_matches() -> None:
    verifier = TokenVerifier(SECRET)
    assert asyncio.run(authenticate("Bearer x", service_key="", tokens=verifier)) is None


# --- Principal.may_access ---------------------------------------------------------------------


def test_a_user_may_access_only_their_own_jobs() -> None:
    user = Principal(user_id=USER_ID)
    assert user.may_access(USER_ID) is True
    assert user.may_access("someone-else") is False
    assert user.may_access("") is False


def test_the_service_may_access_every_job() -> None:
    service = Principal(is_service=True)
    assert service.may_access(USER_ID) is True
    assert service.may_access("someone-else") is True


def test_a_principal_without_a_user_id_owns_nothing() -> None:
    nobody = Principal()
    assert nobody.may_access("") is False
    assert nobody.may_access(USER_ID) is False


class _Decodes:
    """``jwt.decode`` counted (its result unchanged) and the verifier's clock moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from arcano_tools.services import auth

        self.count = 0
        self.now = time.time()
        real = auth.jwt.decode

        def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(auth.jwt, "decode", counted)
        monkeypatch.setattr(auth.time, "time", lambda: self.now)


def test_a_verified_token_is_trusted_a_minute_at_most_then_verified_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from arcano_tools.services.auth import VERIFIED_TOKEN_TTL_S

    token = issue_user_token(SECRET, USER_ID)
    verifier = TokenVerifier(SECRET)
    decodes = _Decodes(monkeypatch)

    first = asyncio.run(verifier.user_id(token))
    again = asyncio.run(verifier.user_id(token))
    assert (first, again, decodes.count) == (USER_ID, USER_ID, 1)
    decodes.now += VERIFIED_TOKEN_TTL_S
    assert asyncio.run(verifier.user_id(token)) == USER_ID
    assert decodes.count == 2


def test_a_remembered_token_is_not_trusted_past_its_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_user_token(SECRET, USER_ID, ttl_s=10)
    verifier = TokenVerifier(SECRET)
    decodes = _Decodes(monkeypatch)
    assert asyncio.run(verifier.user_id(token)) == USER_ID
    decodes.now += 11  # past its exp, well within the minute

    asyncio.run(verifier.user_id(token))

    assert decodes.count == 2  # verified again (and refused, once PyJWT's clock gets there)


def test_a_refused_or_forged_token_is_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_user_token(SECRET, USER_ID)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    verifier = TokenVerifier(SECRET)
    decodes = _Decodes(monkeypatch)

    assert [asyncio.run(verifier.user_id(forged)) for _ in range(2)] == [None, None]
    assert decodes.count == 2
