"""CPython's cyclic garbage collector, tuned for a server process that holds many open pages.

A Reflex worker keeps every open page's state in memory: with a thousand pages open its heap
is a few million objects, and CPython's default thresholds ``(700, 10, 10)`` collect the
young generation every 700 net allocations and look at the whole heap every hundred young
collections. Measured on one worker following 1,000 pages through a burst of 1,000 job ends
(``python -m bench.followers``, BENCHMARKS.md item 27): 1,358 young, 123 middle and 10 full
collections, 3.8 s of the worker's CPU, and each full collection stopped the event loop for
up to a third of a second — every page's push and every webhook's answer waited behind it.

So a server process, once its code is loaded:

* collects once and **freezes** what is alive (``gc.freeze``): the app's modules, compiled
  pages and services are never garbage, and no later collection walks them again;
* collects the young generation after ``YOUNG_THRESHOLD`` net allocations instead of 700:
  most objects of a request or an event die young, before a collection would have to look
  at them, and far fewer survive into the older generations whose collections are the long
  pauses. A full collection still happens (CPython also waits until the objects that
  survived since the last one are a quarter of the heap), so reference cycles are still
  freed; only less often.

Only servers call this (``serve-api`` and the Reflex app's lifespan): the test process and
the command-line tools keep CPython's defaults.
"""

from __future__ import annotations

import gc
from typing import Final

#: Net allocations of container objects between two young collections (CPython: 700).
YOUNG_THRESHOLD: Final = 10_000
#: Young collections between two middle ones, middle between two full ones (CPython's own).
MIDDLE_THRESHOLD: Final = 10
OLD_THRESHOLD: Final = 10


def tune_for_server() -> None:
    """Freeze the loaded code's objects and raise the young threshold. Call once per server
    process, after its imports and before it serves (a forked worker: in the worker)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
