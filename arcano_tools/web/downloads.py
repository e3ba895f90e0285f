"""Where the page's "Baixar" button points and the file name the person gets.

One seam for the download: :func:`download_href` is the only place the page asks for a
result's address. Today it is RunningHub's output URL (same host rules as the sync); the
storage work replaces its body with a signed link to our own copy
(``GET /api/jobs/{table}/{jobId}/download``, answered with ``Content-Disposition: attachment``
and :func:`download_name`). Both are pure: no I/O, so the API can reuse them.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

from arcano_tools.domain.records import Job

#: Extensions a result may keep in its download name (anything else gets the tool's default).
KNOWN_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "webp", "mp4", "webm", "mov"})
#: A result whose URL names no known extension: what the tool produces.
DEFAULT_EXTENSION = "png"
VIDEO_DEFAULT_EXTENSION = "mp4"
#: ``upscaler_jobs`` → ``upscaler``: the tool's part of the name.
TABLE_SUFFIX = "_jobs"
NAME_PREFIX = "arcano"


def download_href(job: Job) -> str:
    """The address of the "Baixar" button (empty while the job has no result)."""
    return job.output_url or ""


def _extension(job: Job) -> str:
    path = urlsplit(job.output_url or "").path
    ext = PurePosixPath(path).suffix.lower().lstrip(".")
    if ext in KNOWN_EXTENSIONS:
        return "jpg" if ext == "jpeg" else ext
    return VIDEO_DEFAULT_EXTENSION if "video" in job.table else DEFAULT_EXTENSION


def download_name(job: Job) -> str:
    """``arcano-upscaler-4x-2026-11-29-1432.png``: the tool, the scale when it has one, the
    time the result was made (UTC) and the result's own extension — readable in a Downloads
    folder, sorted by date, and never RunningHub's ``4268416926968341620_c2b6c428.png``."""
    tool = job.table.removesuffix(TABLE_SUFFIX).replace("_", "-")
    parts = [NAME_PREFIX, tool]
    scale = job.inputs.get("scale")
    if isinstance(scale, int) and not isinstance(scale, bool) and scale > 0:
        parts.append(f"{scale}x")
    when = job.completed_at or job.created_at
    parts.append(when.strftime("%Y-%m-%d-%H%M"))
    return "-".join(parts) + "." + _extension(job)
