"""RunningHub's failure modes as one exception tree, each documented ``code`` mapped once.

::

    RunningHubError
    ├── TransportError          network failure or timeout (transient; retried)
    ├── UnsendableRequest       a request that cannot be put on the wire (a key with a newline)
    ├── HTTPStatusError         non-2xx HTTP answer (5xx transient; retried)
    ├── MalformedResponse       a body that is not RunningHub's JSON envelope
    └── APIError                a ``code`` other than 0 in the envelope
        ├── QueueFull           421 TASK_QUEUE_MAXED / 415 TASK_INSTANCE_MAXED: queue it ourselves
        ├── InsufficientBalance 416 / 812: wallet or enterprise balance too low
        ├── InvalidRequest      301, 803, 433, 380, 901, 810, 809: bad params / app / file
        ├── Unauthorized        802, 801, 811: the key cannot be used
        ├── TaskNotFound        807, 423: RunningHub does not know the task
        └── ServerError         500: unknown error (transient; retried)

``retryable`` says whether the client retries by itself; ``requeue`` whether the queue manager
should keep the job queued and try again later rather than fail it.
"""

from __future__ import annotations


class RunningHubError(Exception):
    """RunningHub could not be used."""

    retryable = False
    requeue = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class TransportError(RunningHubError):
    """RunningHub could not be reached (network error or timeout)."""

    retryable = True


class UnsendableRequest(RunningHubError):
    """The request could not be sent as it is (a header value with a control character, such
    as an API key pasted with its line break): not retried, it would fail again."""


class HTTPStatusError(RunningHubError):
    """RunningHub answered an HTTP error status."""

    def __init__(self, http_status: int, message: str | None = None) -> None:
        super().__init__(message or f"RunningHub answered HTTP {http_status}")
        #: The HTTP status RunningHub (or a proxy in front of it) answered.
        self.http_status = http_status

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.http_status >= 500 or self.http_status == 429


class MalformedResponse(RunningHubError):
    """RunningHub answered something that is not its JSON envelope."""

    retryable = True


class APIError(RunningHubError):
    """RunningHub refused the call (a non-zero ``code``)."""

    def __init__(self, code: int, msg: str = "", data: object = None) -> None:
        super().__init__(f"RunningHub code {code}: {msg}" if msg else f"RunningHub code {code}")
        self.code = code
        self.msg = msg
        self.data = data


class QueueFull(APIError):
    """RunningHub's queue for this account is full; try again later."""

    requeue = True


class InsufficientBalance(APIError):
    """The RunningHub account has no balance left."""


class InvalidRequest(APIError):
    """RunningHub rejected the parameters, the app or the file."""


class Unauthorized(APIError):
    """The RunningHub API key cannot be used."""


class TaskNotFound(APIError):
    """RunningHub does not know this task."""


class ServerError(APIError):
    """RunningHub had an internal error."""

    retryable = True


#: Every documented code → its class (codes 0, 804, 805, 813 are results, not errors).
CODE_ERRORS: dict[int, type[APIError]] = {
    421: QueueFull,
    415: QueueFull,
    416: InsufficientBalance,
    812: InsufficientBalance,
    301: InvalidRequest,
    803: InvalidRequest,
    433: InvalidRequest,
    380: InvalidRequest,
    901: InvalidRequest,
    810: InvalidRequest,
    809: InvalidRequest,
    802: Unauthorized,
    801: Unauthorized,
    811: Unauthorized,
    807: TaskNotFound,
    423: TaskNotFound,
    500: ServerError,
}


def error_for(code: int, msg: str = "", data: object = None) -> APIError:
    """The typed error of a non-zero code; unknown codes are plain (non-retryable) APIErrors."""
    return CODE_ERRORS.get(code, APIError)(code, msg, data)
