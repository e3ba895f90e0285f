"""Supabase's public signing keys (JWKS), fetched once and cached.

Projects on Supabase's signing keys sign access tokens with ES256 (or RS256) and publish the
public keys at ``<SUPABASE_URL>/auth/v1/.well-known/jwks.json``. Verifying a token must not
cost a call to Supabase: the keys are fetched on first need and kept. A token naming a key id
we do not hold (keys rotate) triggers one refetch, at most every ``min_refetch_s``, so a flood
of tokens with invented key ids costs Supabase one request a minute, not one per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt

from arcano_tools import constants as c
from arcano_tools.tls import client_tls

log = logging.getLogger(__name__)

JWKS_PATH = "/auth/v1/.well-known/jwks.json"
#: The asymmetric algorithms Supabase's signing keys use.
ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")

Fetch = Callable[[], Awaitable[dict[str, Any]]]
Clock = Callable[[], float]


def jwks_url(supabase_url: str) -> str:
    return supabase_url.rstrip("/") + JWKS_PATH


class SigningKeys:
    """The project's public keys by key id (``kid``); :meth:`key_for` fetches when needed."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        min_refetch_s: float = c.JWKS_MIN_REFETCH_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_refetch_s = min_refetch_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_fetch: float | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_supabase(cls, supabase_url: str) -> SigningKeys:
        url = jwks_url(supabase_url)

        async def fetch() -> dict[str, Any]:
            async with httpx.AsyncClient(
                timeout=c.SUPABASE_HTTP_TIMEOUT_S, verify=client_tls()
            ) as http:
                response = await http.get(url)
                response.raise_for_status()
                data: dict[str, Any] = response.json()
                return data

        return cls(fetch)

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        """The key ``kid``, fetching the set if we never did or ``kid`` is new (rate-limited)."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if kid not in self._keys and self._may_fetch():
                await self._refresh()
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return self._last_fetch is None or (self._clock() - self._last_fetch >= self._min_refetch_s)

    async def _refresh(self) -> None:
        self._last_fetch = self._clock()
        try:
            document = await self._fetch()
            keys = {
                str(k["kid"]): jwt.PyJWK(k)
                for k in document.get("keys", [])
                if k.get("kid") and k.get("alg") in ASYMMETRIC_ALGORITHMS
            }
        except (httpx.HTTPError, json.JSONDecodeError, jwt.PyJWTError, KeyError, TypeError) as exc:
            # keep the keys we have: a Supabase hiccup must not sign everyone out
            log.warning(
                "could not fetch Supabase signing keys: %s",
                type(exc).__name__,
                extra={"action": "jwks_fetch_failed"},
            )
            return
        self._keys = keys
        log.info("Supabase signing keys fetched", extra={"action": "jwks_fetched"})
