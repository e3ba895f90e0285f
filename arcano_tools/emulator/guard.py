"""Who may steer the emulator and where it may send webhooks.

The emulator runs inside the backend in the demo, so it must not become a tool for whoever
reaches the backend (an audit drove it and used it for server-side request forgery):

* its ``/_control`` and ``/_stats`` need the service key whenever one is configured here
  (always outside ``make run``'s dev mode);
* it POSTs a task's webhook only to the backend's own origin (``PUBLIC_BASE_URL``, or the
  backend's loopback address), and, when it runs alone, only to loopback addresses.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Host names that are this machine.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class EmulatorGuard:
    #: Bearer key of ``/_control`` and ``/_stats``; ``None`` leaves them open (dev and tests).
    control_key: str | None = None
    #: The one origin (``scheme://host[:port]``) webhooks may go to; ``None``: loopback only.
    webhook_origin: str | None = None

    def control_allowed(self, authorization: str | None) -> bool:
        if self.control_key is None:
            return True
        expected = f"Bearer {self.control_key}".encode()
        return hmac.compare_digest(expected, (authorization or "").encode())

    def webhook_allowed(self, url: str) -> bool:
        """Is ``url`` a place this emulator may POST a webhook to?"""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if self.webhook_origin is not None:
            return origin_of(url) == origin_of(self.webhook_origin)
        host = parts.hostname
        if host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback and port != 0
        except ValueError:
            return False


def origin_of(url: str) -> str:
    """``scheme://host:port`` with the default port written out (so the two forms match)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
