"""Search server logs for secrets: every key and secret the suite configures, any JWT, and the
webhook token of every job the logs name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from arcano_tools.domain.tools import DEFAULT_TOOLS
from arcano_tools.services.queue_manager import webhook_token
from tests.support.servers import JWT_SECRET, RH_API_KEY, SERVICE_KEY

#: The start of a JSON Web Token (base64url of ``{"``): no user token may be logged whole.
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
JOB_ID_PATTERN = re.compile(
    r"job_id=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
WEBHOOK_SECRET = ("webhook:" + SERVICE_KEY).encode()


def leaks(logs: Iterable[Path]) -> list[str]:
    """``"<log name>: <what>"`` for every secret found (empty: the logs are clean)."""
    found: list[str] = []
    fixed = {"RunningHub key": RH_API_KEY, "service key": SERVICE_KEY, "JWT secret": JWT_SECRET}
    for path in logs:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        found += [f"{path.name}: the {what}" for what, value in fixed.items() if value in text]
        if JWT_PATTERN.search(text):
            found.append(f"{path.name}: a JWT")
        for job_id in set(JOB_ID_PATTERN.findall(text)):
            for tool in DEFAULT_TOOLS:
                if webhook_token(WEBHOOK_SECRET, tool.table, job_id) in text:
                    found.append(f"{path.name}: the webhook token of {job_id}")
    return found
