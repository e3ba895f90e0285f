"""The download button's link, for the pages: a short-lived signed link to our download route
(``GET /api/jobs/{table}/{jobId}/download``), never the user's token in a URL."""

from __future__ import annotations

import time

from arcano_tools.domain.records import Job
from arcano_tools.services.downloads import DOWNLOAD_LINK_TTL_S, sign_download
from arcano_tools.services.downloads import download_name as _download_name
from arcano_tools.web import runtime


def download_href(job: Job) -> str:
    """A link that downloads ``job``'s result as an attachment with a readable name, valid
    for ``DOWNLOAD_LINK_TTL_S`` (a page makes a new one each time it shows the result)."""
    services = runtime.services()
    expires = int(time.time()) + DOWNLOAD_LINK_TTL_S
    sig = sign_download(services.settings.webhook_secret, job.table, job.id, expires)
    base = services.settings.own_base_url
    return f"{base}/api/jobs/{job.table}/{job.id}/download?expires={expires}&sig={sig}"


def download_name(job: Job) -> str:
    """The file name the download gets: tool, date, scale (``arcano-upscaler-2026-11-29-4x.png``)."""
    return _download_name(job)
