"""Which hosts a job's output may come from.

An output URL ends up in a person's page and in their download, so it is trusted only from
RunningHub's own file hosts (and the host of ``RUNNINGHUB_API_URL``, so the emulator or another
stand-in keeps working); a tampered ``/outputs`` answer, webhook or ``/finish`` call naming any
other host is refused. Operators extend the list with ``RUNNINGHUB_OUTPUT_HOSTS``.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Where RunningHub serves task outputs today: its image CDN, its Tencent COS buckets
#: (``rh-images-1252422369.cos.ap-beijing…``, ``rh-images-switch-1252422369.cos.ap-guangzhou…``)
#: and its own sites. Patterns are shell-style (``*`` within and across labels).
RUNNINGHUB_FILE_HOSTS: tuple[str, ...] = (
    "rh-images.xiaoyaoyou.com",
    "*-1252422369.cos.*.myqcloud.com",
    "runninghub.ai",
    "*.runninghub.ai",
    "runninghub.cn",
    "*.runninghub.cn",
)


@dataclass(frozen=True)
class OutputHosts:
    """An allow-list of host patterns for output URLs (http and https only)."""

    patterns: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str], *, also: Iterable[str] = ()) -> OutputHosts:
        cleaned = [p.strip().lower() for p in [*patterns, *also] if p and p.strip()]
        return cls(tuple(dict.fromkeys(cleaned)))

    def allows(self, url: str | None) -> bool:
        if not url:
            return False
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018  (raises on a malformed port)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
            return False
        return _host_matches(self.patterns, host)


#: Hosts whose verdict is kept (RunningHub answers from a handful; the bound keeps a flood of
#: made-up hosts from growing it).
HOST_VERDICTS_KEPT = 1024


@functools.lru_cache(maxsize=HOST_VERDICTS_KEPT)
def _host_matches(patterns: tuple[str, ...], host: str) -> bool:
    """``host`` matches one of ``patterns``: the ``fnmatch`` of every pattern for every
    result shown or applied was 1–2 % of a first webhook delivery (BENCHMARKS.md, item 31)."""
    return any(fnmatch.fnmatchcase(host, pattern) for pattern in patterns)
