"""Downloads of a result: a readable file name, and short-lived signed links for the pages.

A page cannot put the user's long-lived token in a link (it would sit in the browser history,
proxies' logs and the ``Referer``), so the backend signs ``table:job:expiry`` with its own key
and the download route accepts that signature until it expires (``DOWNLOAD_LINK_TTL_S``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlsplit

from arcano_tools.domain.records import Job

#: How long a signed download link made for a page stays valid.
DOWNLOAD_LINK_TTL_S = 15 * 60
#: What the signing key is derived for (the webhook secret signs other things too).
_PURPOSE = b"arcano-download-v1"
#: Extension of a result by its kind when its stored key does not say (RunningHub's URL).
_DEFAULT_EXT = {"video": "mp4", "image": "png"}
_CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "webm": "video/webm",
}


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def sign_download(secret: bytes, table: str, job_id: str, expires: int) -> str:
    """The signature of a download link valid until ``expires`` (Unix seconds)."""
    message = f"{table}:{job_id}:{expires}".encode()
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def download_link_ok(
    secret: bytes, table: str, job_id: str, expires: str | None, sig: str | None, now: datetime
) -> bool:
    """A signed link for this job that has not expired."""
    if not expires or not sig or not expires.isascii() or not expires.isdecimal():
        return False
    if int(expires) < now.timestamp():
        return False
    expected = sign_download(secret, table, job_id, int(expires))
    return hmac.compare_digest(expected.encode(), sig.encode(errors="replace"))


def result_ext(job: Job) -> str:
    """The result's extension: from our copy's key, else RunningHub's URL, else by tool."""
    for source in (job.output_key or "", urlsplit(job.output_url or "").path):
        tail = source.rsplit("/", 1)[-1]
        if "." in tail:
            ext = tail.rsplit(".", 1)[-1].lower()
            if ext in _CONTENT_TYPES:
                return ext
    return _DEFAULT_EXT["video" if "video" in job.table else "image"]


def content_type_of(ext: str) -> str:
    return _CONTENT_TYPES.get(ext, "application/octet-stream")


def download_name(job: Job) -> str:
    """``arcano-upscaler-4x-2026-11-29-1432.png``: the tool, the scale when it has one, when
    the result was made (UTC) and its own extension — readable in a Downloads folder, sorted by
    date, and never RunningHub's ``4268416926968341620_c2b6c428.png``."""
    tool = job.table.removesuffix("_jobs").replace("_", "-")
    parts = ["arcano", tool]
    scale = job.inputs.get("scale")
    if isinstance(scale, int) and not isinstance(scale, bool) and scale > 0:
        parts.append(f"{scale}x")
    parts.append((job.completed_at or job.created_at).strftime("%Y-%m-%d-%H%M"))
    ext = result_ext(job)
    return "-".join(parts) + "." + ("jpg" if ext == "jpeg" else ext)
