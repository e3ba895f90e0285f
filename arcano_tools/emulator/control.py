"""The emulator's behaviour knobs, its seeded randomness and its counters.

Why a separate module: tests, benchmarks and demos steer the emulator (lost, early, duplicated
webhooks, failures, queue-full, 5xx) through ``POST /_control`` or ``EMULATOR_*`` variables,
and read what happened through ``GET /_stats``. Both need one strict definition of the settings
(bad values are refused with a clear message, never half-applied) and of the counters.
"""

from __future__ import annotations

import dataclasses
import os
import random
import secrets
from collections.abc import Mapping
from typing import Any

from arcano_tools.constants import EMULATOR_DEFAULT_TASK_MS

WEBHOOK_MODES = ("deliver", "drop", "early", "duplicate", "delay")
OUTCOMES = ("success", "fail", "never")
#: How ``GET /files/{name}`` answers (at once, for every file): the file; 404; HTTP 500; an
#: HTML page as ``text/html``; garbage bytes as ``image/png`` (what a copier must refuse).
FILES_MODES = ("serve", "missing", "error", "html", "corrupt")
#: An emulated task or webhook delay longer than an hour is a typo, not a test.
MAX_MS = 3_600_000


class ControlError(ValueError):
    """A control setting has a bad name, type or value (answered as HTTP 400)."""


def key_prefix(api_key: str) -> str:
    """What stats and logs may show of an API key: its first 4 characters."""
    return f"{api_key[:4]}…"


@dataclasses.dataclass
class EmulatorControl:
    """How the emulator behaves for tasks created from now on.

    ``seed`` None means "unseeded": task ids differ between runs, so a restarted emulator never
    reuses a task id the app has stored. Set it to get reproducible ids and error injection.
    """

    webhook: str = "deliver"
    webhook_delay_ms: int = 1000
    task_ms: int = EMULATOR_DEFAULT_TASK_MS
    outcome: str = "success"
    queue_full_next: int = 0
    http_error_rate: float = 0.0
    seed: int | None = None
    key_concurrency: int | None = None
    malformed_webhook: bool = False
    #: Extra time every RunningHub API answer takes (real calls take 100–500 ms); makes the
    #: concurrency of a client's requests observable in ``max_requests_in_flight``.
    latency_ms: int = 0
    #: How output files are served (``FILES_MODES``; applies at once, unlike the rest).
    files: str = "serve"
    #: Extra time every output file takes to start answering (a slow CDN; a copy in flight).
    files_delay_ms: int = 0

    # -- validation ------------------------------------------------------------------------
    @staticmethod
    def _check(name: str, value: Any) -> Any:
        """Return ``value`` normalised for field ``name`` or raise :class:`ControlError`."""

        def need_int(lo: int, hi: int | None = None) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ControlError(f"{name} must be an integer, got {value!r}")
            if value < lo or (hi is not None and value > hi):
                upper = f" and <= {hi}" if hi is not None else ""
                raise ControlError(f"{name} must be >= {lo}{upper}, got {value}")
            return value

        if name == "webhook":
            if value not in WEBHOOK_MODES:
                raise ControlError(
                    f"webhook must be one of {', '.join(WEBHOOK_MODES)}; got {value!r}"
                )
            return value
        if name == "outcome":
            if value not in OUTCOMES:
                raise ControlError(f"outcome must be one of {', '.join(OUTCOMES)}; got {value!r}")
            return value
        if name == "files":
            if value not in FILES_MODES:
                raise ControlError(f"files must be one of {', '.join(FILES_MODES)}; got {value!r}")
            return value
        if name in ("webhook_delay_ms", "task_ms", "latency_ms", "files_delay_ms"):
            return need_int(0, MAX_MS)
        if name == "queue_full_next":
            return need_int(0)
        if name == "http_error_rate":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlError(f"http_error_rate must be a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ControlError(f"http_error_rate must be between 0 and 1, got {value}")
            return float(value)
        if name == "seed":
            return None if value is None else need_int(-(2**63), 2**63 - 1)
        if name == "key_concurrency":
            return None if value is None else need_int(1)
        if name == "malformed_webhook":
            if not isinstance(value, bool):
                raise ControlError(f"malformed_webhook must be true or false, got {value!r}")
            return value
        raise ControlError(f"unknown setting {name!r}")

    def validated(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Check every change first, so a bad request changes nothing."""
        known = {f.name for f in dataclasses.fields(self)}
        out: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                allowed = ", ".join(sorted([*known, "reset", "drop_outputs"]))
                raise ControlError(f"unknown setting {name!r} (allowed: {allowed})")
            out[name] = self._check(name, value)
        return out

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply validated changes in place; returns them normalised."""
        valid = self.validated(changes)
        for name, value in valid.items():
            setattr(self, name, value)
        return valid

    def assign(self, other: EmulatorControl) -> None:
        """Copy every setting of ``other`` into this object (keeps references to it valid)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def copy(self) -> EmulatorControl:
        return dataclasses.replace(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- environment -----------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmulatorControl:
        """Settings from ``EMULATOR_*`` variables over the defaults; bad values raise ControlError."""
        env = os.environ if environ is None else environ
        parsers: dict[str, Any] = {
            "webhook": str,
            "webhook_delay_ms": int,
            "task_ms": int,
            "outcome": str,
            "queue_full_next": int,
            "http_error_rate": float,
            "seed": int,
            "key_concurrency": int,
            "malformed_webhook": _parse_bool,
            "latency_ms": int,
            "files": str,
            "files_delay_ms": int,
        }
        changes: dict[str, Any] = {}
        for name, parse in parsers.items():
            var = f"EMULATOR_{name.upper()}"
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            raw = raw.strip()
            if name in ("seed", "key_concurrency") and raw.lower() in ("none", "null"):
                changes[name] = None
                continue
            try:
                changes[name] = parse(raw)
            except ValueError as exc:
                raise ControlError(f"{var}={raw!r}: {exc}") from None
        control = cls()
        try:
            control.update(changes)
        except ControlError as exc:
            raise ControlError(f"bad EMULATOR_* environment: {exc}") from None
        return control


def _parse_bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


class EmulatorRandom:
    """Two independent seeded streams: one for ids, one for injected HTTP errors.

    Separate streams keep task ids reproducible for a seed whatever the error rate is.
    """

    def __init__(self, seed: int | None) -> None:
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        base = secrets.randbits(63) if seed is None else seed
        # String seeds are hashed with SHA-512: stable across processes and PYTHONHASHSEED.
        self._ids = random.Random(f"ids:{base}")
        self._errors = random.Random(f"errors:{base}")

    def task_id(self) -> str:
        """A 19-digit id like RunningHub's (an int64 sent as a string)."""
        return str(self._ids.randrange(1_900_000_000_000_000_000, 9_000_000_000_000_000_000))

    def client_id(self) -> str:
        return f"{self._ids.getrandbits(128):032x}"

    def http_error(self, rate: float) -> int | None:
        """The 5xx status to inject for this request, or None (draws only when rate > 0)."""
        if rate <= 0.0:
            return None
        if self._errors.random() < rate:
            return self._errors.choice((500, 502))
        return None


@dataclasses.dataclass
class WebhookStats:
    sent: int = 0  # deliveries answered 2xx (each duplicate counts)
    dropped: int = 0  # webhooks deliberately not sent (mode "drop")
    failed: int = 0  # deliveries given up after retries or a 401
    duplicates: int = 0  # extra copies sent beyond the first (mode "duplicate")
    early: int = 0  # webhooks sent before the create call answered (mode "early")
    attempts: int = 0  # every POST tried, retries included
    retries: int = 0


@dataclasses.dataclass
class TaskStats:
    created: int = 0
    running: int = 0
    max_running: int = 0
    max_running_by_key: dict[str, int] = dataclasses.field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclasses.dataclass
class EmulatorStats:
    """Everything ``GET /_stats`` reports. Keys are prefixes only (see :func:`key_prefix`)."""

    calls: dict[str, int] = dataclasses.field(default_factory=dict)
    webhooks: WebhookStats = dataclasses.field(default_factory=WebhookStats)
    tasks: TaskStats = dataclasses.field(default_factory=TaskStats)
    outputs_calls_by_task: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    queue_full_answers: int = 0
    http_errors: int = 0
    #: RunningHub API requests being answered now, and the most at once (a client's cap).
    requests_in_flight: int = 0
    max_requests_in_flight: int = 0
    #: The same per endpoint (``{"run": 2}``): a test that kills a backend while its create
    #: calls are held knows they are all still unanswered, not merely counted.
    calls_in_flight: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Unfinished tasks per full API key: internal, never reported.
    _running_by_key: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)

    def count_call(self, endpoint: str) -> None:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def call_began(self, endpoint: str) -> None:
        self.count_call(endpoint)
        self.calls_in_flight[endpoint] = self.calls_in_flight.get(endpoint, 0) + 1
        self.requests_in_flight += 1
        self.max_requests_in_flight = max(self.max_requests_in_flight, self.requests_in_flight)

    def call_ended(self, endpoint: str) -> None:
        self.calls_in_flight[endpoint] -= 1
        self.requests_in_flight -= 1

    def task_started(self, api_key: str) -> None:
        t = self.tasks
        t.created += 1
        t.running += 1
        t.max_running = max(t.max_running, t.running)
        n = self._running_by_key.get(api_key, 0) + 1
        self._running_by_key[api_key] = n
        prefix = key_prefix(api_key)
        t.max_running_by_key[prefix] = max(t.max_running_by_key.get(prefix, 0), n)

    def task_ended(self, api_key: str, status: str) -> None:
        """``status``: "SUCCESS", "FAILED" or "CANCELLED"."""
        t = self.tasks
        t.running -= 1
        self._running_by_key[api_key] = self._running_by_key.get(api_key, 1) - 1
        if status == "SUCCESS":
            t.succeeded += 1
        elif status == "FAILED":
            t.failed += 1
        else:
            t.cancelled += 1

    def running_for(self, api_key: str) -> int:
        return self._running_by_key.get(api_key, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "webhooks": dataclasses.asdict(self.webhooks),
            "tasks": dataclasses.asdict(self.tasks),
            "outputs_calls_by_task": {k: list(v) for k, v in self.outputs_calls_by_task.items()},
            "queue_full_answers": self.queue_full_answers,
            "http_errors": self.http_errors,
            "max_requests_in_flight": self.max_requests_in_flight,
            "calls_in_flight": dict(self.calls_in_flight),
        }
