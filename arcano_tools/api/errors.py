"""The HTTP face of the core's errors: one table from error class to status code.

The core raises :class:`~arcano_tools.domain.errors.JobError` subclasses whose messages are
fit for people; only this module knows which status each one is (the core knows none).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from arcano_tools.domain.errors import (
    FileTooLarge,
    InsufficientCredits,
    InvalidInput,
    JobError,
    JobNotCancellable,
    JobNotFound,
    UnsupportedFile,
)

#: Most specific first: the first class the error is an instance of decides.
STATUS_OF_ERROR: tuple[tuple[type[JobError], int], ...] = (
    (InvalidInput, 422),
    (UnsupportedFile, 415),
    (FileTooLarge, 413),
    (InsufficientCredits, 402),
    (JobNotFound, 404),
    (JobNotCancellable, 409),
)
#: Any other :class:`JobError`: the request cannot be processed as sent.
DEFAULT_ERROR_STATUS = 400


def http_status_of(error: JobError) -> int:
    return next(
        (status for cls, status in STATUS_OF_ERROR if isinstance(error, cls)),
        DEFAULT_ERROR_STATUS,
    )


def error_response(message: str, status: int, **extra: Any) -> JSONResponse:
    """``{"error": message, …}`` — the one error shape of every route."""
    return JSONResponse({"error": message, **extra}, status_code=status)
