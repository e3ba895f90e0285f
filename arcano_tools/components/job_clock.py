"""A followed job's clock on the tool page — elapsed time, estimate and bar — run by the browser.

The server sends a snapshot of the clock when the job changes (``ToolPageState._show``); these
React components (``assets/job_clock.jsx``) move it along every second. Before, the server
pushed the elapsed time to every following page once a second: with a thousand pages open that
was most of a worker's CPU while nothing happened (BENCHMARKS.md, items 12 and 20).
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from arcano_tools import constants as c
from arcano_tools.web.state import ToolPageState
from arcano_tools.web.texts import (
    ESTIMATE_ABOUT,
    ESTIMATE_SENTENCE,
    ESTIMATE_SOON,
    ESTIMATE_UNKNOWN,
)

#: The components' source, copied into the frontend's public folder with the other assets.
LIBRARY = "$/public/job_clock.jsx"


class _JobClock(rx.Component):
    library = LIBRARY
    #: The snapshot: milliseconds since the click, when the server took it.
    elapsed_ms: rx.Var[int]
    #: The job is active: the clock moves (an ended job's time is final).
    running: rx.Var[bool]


class JobElapsed(_JobClock):
    """ "1 min 05 s" since the click (a plain string: style it with its parent)."""

    tag = "JobElapsed"


class _Countdown(_JobClock):
    #: The estimate's snapshot: seconds left (-1: no history to estimate from).
    left_s: rx.Var[int]
    #: It counts down from the snapshot (the job has left the queue).
    counts_down: rx.Var[bool]


class JobEstimate(_Countdown):
    """The estimate's sentence, from the templates in ``web/texts.py``."""

    tag = "JobEstimate"
    unknown: rx.Var[str]
    soon: rx.Var[str]
    about: rx.Var[str]
    sentence: rx.Var[str]


class JobProgress(_Countdown):
    """Radix's progress bar at elapsed / (elapsed + left), kept within ``low``–``high``."""

    tag = "JobProgress"
    low: rx.Var[int]
    high: rx.Var[int]


def _snapshot(state: type[ToolPageState]) -> dict[str, Any]:
    """The clock's snapshot as every part of it takes it."""
    return {"elapsed_ms": state.elapsed_ms, "running": state.is_active}


def _countdown(state: type[ToolPageState]) -> dict[str, Any]:
    return {**_snapshot(state), "left_s": state.left_s, "counts_down": state.left_counts}


def elapsed(state: type[ToolPageState]) -> rx.Component:
    return JobElapsed.create(**_snapshot(state))


def estimate(state: type[ToolPageState]) -> rx.Component:
    return JobEstimate.create(
        **_countdown(state),
        unknown=ESTIMATE_UNKNOWN,
        soon=ESTIMATE_SOON,
        about=ESTIMATE_ABOUT,
        sentence=ESTIMATE_SENTENCE,
    )


def progress_bar(state: type[ToolPageState], **props: object) -> rx.Component:
    return JobProgress.create(
        **_countdown(state), low=c.PROGRESS_QUEUED_PCT, high=c.PROGRESS_MAX_ACTIVE_PCT, **props
    )
