"""The fault matrix (``tests/support/matrix.py``) at ``make test`` size: every scenario of the
reliability issue through the real API and emulator processes, on SQLite and, where it
matters, PostgreSQL — each judged by the promise (one terminal transition, one charge, a refund
iff failed, balance = ledger, honest output URLs) and by the deadline.

The scenarios are independent (own emulator, API processes and database), so the selected ones
run four at a time in one module fixture; each test then reports its own scenario. The full-size
run is ``make matrix`` (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.matrix import TEST_PLAN, Case, Result, cases, run_cases

CASES = cases(full=False)


def _param(case: Case) -> object:
    marks = []
    if "postgres" in case.database:
        marks.append(pytest.mark.postgres)
    if case.scenario.known_bug:
        marks.append(pytest.mark.xfail(strict=True, reason=case.scenario.known_bug))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def matrix_results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Result]:
    """Run every selected case of this module at once (``-k`` selects fewer)."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    pg_url = None
    if any(k.database == "postgres" for k in selected):
        pg_url = request.getfixturevalue("pg_server_url")
    workdir: Path = tmp_path_factory.mktemp("matrix")
    return run_cases(selected, TEST_PLAN, workdir, pg_url)


@pytest.mark.parametrize("case", [_param(k) for k in CASES])
def test_the_promise_holds_under(case: Case, matrix_results: dict[str, Result]) -> None:
    result = matrix_results[case.id]
    assert not result.problems, result.report()
