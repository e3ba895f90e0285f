"""Supabase access tokens verified locally: ES256 with the project's signing keys (JWKS,
fetched once and cached, refetched on an unknown key id at most once a minute) and HS256."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from arcano_tools import constants as c
from arcano_tools.services.auth import TokenVerifier
from arcano_tools.services.signing_keys import SigningKeys
from arcano_tools.web.session import refresh_in

ISSUER = "https://abc.supabase.co/auth/v1"
SECRET = "hs-secret-" + "0123456789abcdef" * 3
USER_ID = "0b6c3a4e-96f1-4b55-a3c2-2f3f0ad1c0de"


class Project:
    """A Supabase project's signing keys, its JWKS and a fetch counter; a settable clock."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {"k1": ec.generate_private_key(ec.SECP256R1())}
        self.fetches = 0
        self.now = 1000.0
        self.fail = False

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            pub = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            return {**pub, "kid": kid, "alg": "RS256"}
        pub = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**pub, "kid": kid, "alg": "ES256"}

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        if self.fail:
            raise jwt.PyJWKError("network down (as the fetch would report it)")
        return {"keys": [self.jwk(k) for k in self.keys]}

    def verifier(self) -> TokenVerifier:
        keys = SigningKeys(self.fetch, clock=lambda: self.now)
        return TokenVerifier(SECRET, keys, issuer=ISSUER)

    def token(self, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "sub": USER_ID,
            "aud": "authenticated",
            "role": "authenticated",
            "iss": ISSUER,
            "iat": now,
            "exp": now + 60,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        key = self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def project() -> Project:
    return Project()


async def test_an_es256_token_verifies_and_the_keys_are_fetched_once(project: Project) -> None:
    verifier = project.verifier()
    for _ in range(20):
        assert await verifier.user_id(project.token()) == USER_ID
    assert project.fetches == 1


async def test_an_rs256_signing_key_works_too(project: Project) -> None:
    project.keys["r1"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await project.verifier().user_id(project.token("r1")) == USER_ID


async def test_a_rotated_in_key_is_fetched_on_its_first_token(project: Project) -> None:
    verifier = project.verifier()
    assert await verifier.user_id(project.token()) == USER_ID
    project.keys["k2"] = ec.generate_private_key(ec.SECP256R1())
    project.now += c.JWKS_MIN_REFETCH_S
    assert await verifier.user_id(project.token("k2")) == USER_ID
    assert project.fetches == 2


def forged(kid: str) -> str:
    """A token under a key id the project never published, signed by someone else's key."""
    claims = {
        "sub": "x",
        "aud": "authenticated",
        "role": "authenticated",
        "iss": ISSUER,
        "exp": int(time.time()) + 60,
    }
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


async def test_unknown_key_ids_refetch_at_most_once_a_minute(project: Project) -> None:
    verifier = project.verifier()
    assert await verifier.user_id(project.token()) == USER_ID
    for i in range(30):  # within the minute of the first fetch: no call at all
        assert await verifier.user_id(forged(f"invented-{i}")) is None
    assert project.fetches == 1
    project.now += c.JWKS_MIN_REFETCH_S
    for i in range(30):  # a minute later: one refetch, for the first unknown id only
        assert await verifier.user_id(forged(f"again-{i}")) is None
    assert project.fetches == 2
    assert await verifier.user_id(project.token("k1")) == USER_ID  # held: no fetch
    assert project.fetches == 2


async def test_a_failed_fetch_keeps_the_keys_already_held(project: Project) -> None:
    verifier = project.verifier()
    assert await verifier.user_id(project.token()) == USER_ID
    project.fail = True
    project.now += c.JWKS_MIN_REFETCH_S
    project.keys["k2"] = ec.generate_private_key(ec.SECP256R1())
    assert await verifier.user_id(project.token("k2")) is None
    assert await verifier.user_id(project.token("k1")) == USER_ID


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 5}, "expired"),
        ({"iss": "https://other.supabase.co/auth/v1"}, "another project"),
        ({"iss": None}, "no issuer"),
        ({"aud": "anon"}, "wrong audience"),
        ({"role": "anon"}, "not a signed-in user"),
        ({"sub": None}, "no user"),
        ({"is_anonymous": True}, "an anonymous sign-in: free users by the thousand"),
    ],
)
async def test_tokens_that_must_not_pass(
    project: Project, claims: dict[str, Any], why: str
) -> None:
    assert await project.verifier().user_id(project.token(**claims)) is None, why


async def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused(project: Project) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {
            "sub": USER_ID,
            "aud": "authenticated",
            "role": "authenticated",
            "iss": ISSUER,
            "exp": int(time.time()) + 60,
        },
        other,
        algorithm="ES256",
        headers={"kid": "k1"},  # claims to be the project's key
    )
    assert await project.verifier().user_id(token) is None


async def test_alg_none_and_garbage_are_refused(project: Project) -> None:
    unsigned = jwt.encode({"sub": USER_ID, "role": "authenticated"}, None, algorithm="none")
    verifier = project.verifier()
    assert await verifier.user_id(unsigned) is None
    assert await verifier.user_id("not-a-jwt") is None


async def test_without_supabase_only_hs256_tokens_are_accepted(project: Project) -> None:
    verifier = TokenVerifier(SECRET)
    assert await verifier.user_id(project.token()) is None
    hs = jwt.encode(
        {
            "sub": USER_ID,
            "aud": "authenticated",
            "role": "authenticated",
            "exp": int(time.time()) + 60,
        },
        SECRET,
        algorithm="HS256",
    )
    assert await verifier.user_id(hs) == USER_ID
    assert project.fetches == 0


# --- when a browser's session is refreshed ------------------------------------------------------


def hs_token(iat: int, exp: int) -> str:
    return jwt.encode({"sub": USER_ID, "iat": iat, "exp": exp}, SECRET, algorithm="HS256")


def test_an_hour_token_is_refreshed_a_minute_before_it_expires() -> None:
    token = hs_token(1000, 1000 + 3600)
    assert refresh_in(token, now=1000) == 3600 - c.SESSION_REFRESH_MARGIN_S
    assert refresh_in(token, now=1000 + 3600 - 30) < 0


def test_a_short_token_is_refreshed_in_the_last_quarter_of_its_life() -> None:
    token = hs_token(1000, 1008)
    assert refresh_in(token, now=1000) == 6
    assert refresh_in(token, now=1007) < 0


def test_an_unreadable_token_is_due_at_once() -> None:
    assert refresh_in("garbage", now=1000) == 0
    assert refresh_in(jwt.encode({"sub": "x"}, SECRET, algorithm="HS256"), now=1000) == 0
