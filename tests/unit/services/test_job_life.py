"""The promise under arbitrary interleavings, on the in-memory store (Hypothesis, derandomized:
the same sequences every run). The same machine runs on PostgreSQL in the integration suite."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.support.job_life import JobLifeMachine

#: Sequences tried and steps per sequence in ``make test`` (seconds on the in-memory store).
EXAMPLES = 40
STEPS = 25

TestJobLifeInMemory = JobLifeMachine.TestCase
TestJobLifeInMemory.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
