"""Group commit and the no-read duplicate (issue 9) on the real databases (SQLite and the
suite's PostgreSQL): concurrent writes share transactions and keep their one-by-one meaning —
one terminal transition, one slot released, at most one refund — and a failing write fails
alone. Statements are counted with a SQLAlchemy cursor hook."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from arcano_tools.domain.records import FinishRequest, NewJob
from arcano_tools.domain.status import FinishedBy, JobStatus, WebhookOutcome
from arcano_tools.services.auth import Principal
from arcano_tools.store import JobStore, schema
from arcano_tools.store import store as store_module
from tests.support.core import ACCOUNT, Core, build_core
from tests.support.fixtures import pg_server_url  # noqa: F401  (fixtures are found by name)
from tests.support.postgres import create_database
from tests.support.waiting import wait_for_async

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
RACERS = 24
#: ``Core.running`` submits as ``u1``.
OWNER = Principal(user_id="u1")
T = TypeVar("T")


@pytest.fixture(params=BACKENDS)
async def core(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Core]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        server: str = request.getfixturevalue("pg_server_url")
        url = create_database(server).replace("postgresql://", "postgresql+psycopg://")
    built = await build_core(tmp_path, database_url=url, control={"outcome": "never"})
    yield built
    await built.store.close()
    await built.webhooks.events.aclose()
    await built.emulator.shutdown()
    await built.client.aclose()


async def behind_a_held_batch(
    batcher: Callable[[Callable[[sa.Connection], None]], Awaitable[object]],
    calls: Callable[[], Awaitable[T]],
) -> T:
    """``calls()`` made while a batch of ``batcher`` (the store's group commit, or its
    batched reads) is held in the store's thread: they queue up behind it and, once it is
    let go, run together in the next batch."""
    hold = threading.Event()

    def held(_conn: sa.Connection) -> None:
        hold.wait(10)

    blocker = asyncio.ensure_future(batcher(held))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(calls())
    await asyncio.sleep(0.05)
    hold.set()
    results = await queued
    await blocker
    return results


@contextmanager
def statements(store: JobStore) -> Iterator[list[str]]:
    """Every SQL statement the store sends while inside (BEGIN/COMMIT of the driver excluded)."""
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        verb = sql.split(None, 1)[0].upper()
        if verb not in ("BEGIN", "COMMIT", "ROLLBACK"):  # SQLite's BEGIN IMMEDIATE is ours
            seen.append(verb)

    engines = [store.engine.sync_engine, store._thread_engine]  # async and in-thread work
    for engine in engines:
        event.listen(engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", hook)


async def test_racing_finishes_share_transactions_and_change_the_job_once(core: Core) -> None:
    job = await core.running()
    assert job.holds_slot
    store: JobStore = core.store
    requests = [
        FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="https://x/o.png")
        if i % 2
        else FinishRequest(JobStatus.FAILED, FinishedBy.WATCHDOG, error_message="e")
        for i in range(RACERS)
    ]
    transactions_before = store._group.transactions if store._group else 0

    results = await asyncio.gather(*(store.finish(job.table, job.id, r) for r in requests))

    assert sum(r is not None and r.changed for r in results) == 1
    assert store._group is not None
    assert store._group.transactions - transactions_before < RACERS  # grouped, not one each
    ended = await core.job(job)
    assert not ended.holds_slot
    account = await store.get_account(job.api_account or "")
    assert account is not None
    assert account.in_flight == 0
    refunds = [e for e in await store.ledger(job.user_id) if e["kind"] == "refund"]
    assert len(refunds) == (1 if ended.status is JobStatus.FAILED else 0)


async def test_finishes_in_one_batch_keep_their_order_and_run_on_the_drivers_cursor(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finishes queued behind a batch run in the next one: their guarded updates on the
    driver's cursor — on PostgreSQL in one pipeline (a round trip each before), on SQLite
    with their rows read back as SQLAlchemy would — then each finish's rest in order. Every answer is the one of running them one after the other: a second
    finish of a job finds it ended, a queued job (no slot) is finished by the fallback, a
    failure and a cancellation are refunded once, a missing job is ``None``, every slot is
    given back once."""
    store: JobStore = core.store
    first, second = [await core.running(user=f"u{i}") for i in range(2)]
    queued = await core.submit(user="u3")  # both slots taken: it waits in the queue
    assert (await core.job(queued)).status is JobStatus.QUEUED
    together: list[tuple[str, int]] = []
    for name in ("_first_rows_pipelined", "_first_rows_on_sqlite"):
        real = getattr(store_module, name)

        def spy(
            conn: sa.Connection, finishes: list[Any], name: str = name, real: Any = real
        ) -> Any:
            together.append((name, len(finishes)))
            return real(conn, finishes)

        monkeypatch.setattr(store_module, name, spy)
    done = FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="https://x/o.png")
    failed = FinishRequest(JobStatus.FAILED, FinishedBy.WATCHDOG, error_message="falhou")
    cancelled = FinishRequest(JobStatus.CANCELLED, FinishedBy.USER)
    asked = [
        (first, done),
        (first, failed),  # a second finish of the same job: it has ended
        (second, failed),
        (queued, cancelled),
    ]
    results = await behind_a_held_batch(
        store._grouped,
        lambda: asyncio.gather(
            *(store.finish(job.table, job.id, req) for job, req in asked),
            store.finish(first.table, str(uuid.uuid4()), done),
        ),
    )

    # the five first statements ran together on the driver's cursor: on PostgreSQL in one
    # pipeline, on SQLite one after the other without SQLAlchemy's execution around each
    runner = "_first_rows_pipelined" if store.dialect == "postgresql" else "_first_rows_on_sqlite"
    assert together == [(runner, 5)]
    assert [(r.changed, r.job.status, r.refunded) if r else None for r in results] == [
        (True, JobStatus.COMPLETED, False),
        (False, JobStatus.COMPLETED, False),
        (True, JobStatus.FAILED, True),
        (True, JobStatus.CANCELLED, True),
        None,
    ]
    for result in results[:4]:
        assert result is not None
        assert result.job == await core.job(result.job)  # the row as stored, every field
        assert not result.job.holds_slot
    account = await store.get_account(first.api_account or "")
    assert account is not None
    assert account.in_flight == 0
    for job, refunds in ((first, 0), (second, 1), (queued, 1)):
        kinds = [e["kind"] for e in await store.ledger(job.user_id)]
        assert kinds.count("refund") == refunds


async def test_a_failing_write_fails_alone_and_the_others_commit(core: Core) -> None:
    store: JobStore = core.store
    await store.ensure_user("u9", credits=100)
    taken = str(uuid.uuid4())
    await store.create_job(NewJob(id=taken, table="upscaler_jobs", user_id="u9", cost=1, inputs={}))
    fresh = [str(uuid.uuid4()) for _ in range(5)]
    ids = [*fresh[:2], taken, *fresh[2:]]  # the third one's id already exists

    results = await asyncio.gather(
        *(
            store.create_job(NewJob(id=i, table="upscaler_jobs", user_id="u9", cost=1, inputs={}))
            for i in ids
        ),
        return_exceptions=True,
    )

    assert isinstance(results[2], sa.exc.IntegrityError)
    assert [r.id for r in results if not isinstance(r, BaseException)] == fresh
    for job_id in fresh:
        assert await store.get_job("upscaler_jobs", job_id) is not None
    user = await store.get_user("u9")
    assert user is not None
    assert user.credits == 100 - 1 - len(fresh)  # the failed one charged nothing


async def test_a_duplicate_webhook_sends_no_statement_and_its_record_comes_in_bulk(
    core: Core,
) -> None:
    core.control(outcome="success")
    job = await core.running()
    body = await core.webhook_for(job)
    await core.webhooks.receive(job.table, job.id, core.token(job), body)

    with statements(core.store) as sent:
        again = await core.webhooks.receive(job.table, job.id, core.token(job), body)
        await core.webhooks.receive(job.table, job.id, core.token(job), body)
    with statements(core.store) as written:
        await core.webhooks.events.flush()

    assert again.status is JobStatus.COMPLETED
    assert sent == []  # no read, no update, no insert before the answer
    assert written == ["INSERT"]  # both records (webhook health), one statement
    assert await core.store.webhook_counts() == {
        WebhookOutcome.ACCEPTED.value: 1,
        WebhookOutcome.DUPLICATE.value: 2,
    }


async def test_a_sync_not_due_sends_no_write(core: Core) -> None:
    job = await core.running()
    await core.sync.sync(job.table, job.id, OWNER)  # due: asks RunningHub
    core.sync.not_due = type(core.sync.not_due)(core.bus)  # an empty memory: the read path

    with statements(core.store) as sent:
        outcome = await core.sync.sync(job.table, job.id, OWNER)
        cached = await core.sync.sync(job.table, job.id, OWNER)

    assert outcome.cached
    assert cached.cached
    assert set(sent) <= {"SELECT"}, sent  # reads only, and only for the first of the two
    assert len(sent) == 2  # the job and its account; the second sync sent nothing


async def test_the_store_keeps_working_while_asyncio_s_default_threads_are_all_busy(
    core: Core,
) -> None:
    """asyncio's default executor also runs every outgoing request's DNS lookup: a thousand
    result-size HEADs to a host that resolved slowly once filled it, and each webhook's
    finish waited behind them (pages saw their job end 98 s late). The store has its own."""
    core.control(outcome="success")
    job = await core.running()
    body = await core.webhook_for(job)  # the emulator ends the task (its own threads' work)
    loop = asyncio.get_running_loop()
    release = threading.Event()
    blockers = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    try:
        result = await asyncio.wait_for(  # a hang, not a speed: nothing is free to run it
            core.webhooks.receive(job.table, job.id, core.token(job), body), timeout=30
        )
        ended = await asyncio.wait_for(core.store.get_job(job.table, job.id), timeout=30)
    finally:
        release.set()
        await asyncio.gather(*blockers)

    assert result.status is JobStatus.COMPLETED
    assert ended is not None
    assert ended.status is JobStatus.COMPLETED


async def test_a_hot_read_is_its_one_statement_without_a_transaction(core: Core) -> None:
    """A read of one statement is atomic alone: no BEGIN and COMMIT around it (round trips
    on PostgreSQL; on SQLite two statements more, 3 % of a first webhook delivery)."""
    job = await core.running()
    sent: list[str] = []

    def hook(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(sql.split(None, 1)[0].upper())

    event.listen(core.store._thread_engine, "before_cursor_execute", hook)
    try:
        read = await core.store.get_job(job.table, job.id)
    finally:
        event.remove(core.store._thread_engine, "before_cursor_execute", hook)

    assert read is not None
    assert read.id == job.id
    assert sent == ["SELECT"]
    if core.store.dialect == "sqlite":  # and its connection is left as ours: no implicit BEGIN
        with core.store._thread_engine.connect() as conn:
            assert conn.connection.dbapi_connection.isolation_level is None  # type: ignore[union-attr]


async def test_a_start_writes_through_the_group_commit_only(core: Core) -> None:
    """The claim, the task id and the look for kept webhooks of a start: none of them is sent
    statement by statement through the async engine (each statement a hand-off to aiosqlite's
    thread; the claim was five, the look for kept webhooks a write transaction that took the
    write lock to find nothing — BENCHMARKS.md, item 19)."""
    job = await core.submit()
    sent: list[str] = []

    def hook(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(sql.split(None, 1)[0].upper())

    event.listen(core.store.engine.sync_engine, "before_cursor_execute", hook)
    try:
        started = await core.dispatch()
    finally:
        event.remove(core.store.engine.sync_engine, "before_cursor_execute", hook)

    assert started == 1
    running = await core.job(job)
    assert running.status is JobStatus.RUNNING
    assert running.task_id is not None
    assert running.holds_slot
    assert sent == []


async def test_answers_recorded_together_are_one_executemany_with_every_row_written(
    core: Core,
) -> None:
    """A sweep records a thousand "still running" answers a second: those that share a
    transaction go as one statement for all of them (they were one each)."""
    await core.store.upsert_account("default", "k" * 32, max_concurrent=8)
    jobs = [await core.running(user=f"answer-{n}") for n in range(6)]
    leased = jobs[:3]  # their leases end with the answer; the others have none
    owner = "watchdog-1"
    now = core.clock()
    t = schema.job_tables[jobs[0].table]
    async with core.store._write() as conn:
        leases = t.update().where(t.c.id.in_([j.id for j in leased]))
        await conn.execute(leases.values(lease_owner=owner, lease_until=now))

    with statements(core.store) as sent:
        await asyncio.gather(
            *(
                core.store.record_check_result(
                    job.table,
                    job.id,
                    804,
                    f"running {n}",
                    lease_owner=owner if job in leased else None,
                )
                for n, job in enumerate(jobs)
            )
        )

    assert sent == ["UPDATE", "UPDATE"]  # one per statement: with and without the lease
    for n, job in enumerate(jobs):
        after = await core.job(job)
        assert (after.last_upstream_code, after.last_upstream_msg) == (804, f"running {n}")
    async with core.store._write() as conn:
        held = await conn.scalar(sa.select(sa.func.count()).where(t.c.lease_owner.is_not(None)))
    assert held == 0


async def test_reads_that_arrive_together_share_a_hand_off(core: Core) -> None:
    """One-statement reads take turns like the writes: those waiting while a batch is in the
    thread run together (one hand-off to a thread, one connection), each with its own answer.
    Under a webhook burst each read was a hand-off and a connection checkout of its own."""
    store: JobStore = core.store
    jobs = [await core.running(user=f"u{i}") for i in range(2)]
    hand_offs = count_hand_offs(store)
    wanted = [jobs[i % 2] for i in range(RACERS)]

    results = await asyncio.gather(
        *(store.get_job(job.table, job.id) for job in wanted),
        store.get_job(jobs[0].table, str(uuid.uuid4())),
    )

    assert [r.id if r else None for r in results] == [j.id for j in wanted] + [None]
    assert hand_offs[0] <= 2  # the first read alone, then the others together (25 before)


async def test_jobs_read_in_one_batch_are_one_statement_per_table(core: Core) -> None:
    """A burst of first webhook deliveries each reads its job: those in one batch are read
    with one ``SELECT … IN`` per table (a round trip each on PostgreSQL before), and each
    caller still gets its own job — or ``None`` for an id that is no job, a job of another
    table included."""
    store: JobStore = core.store
    upscales = [await core.running(user=f"u{i}") for i in range(3)]
    pose = await core.running(tool="pose_changer", user="u9")
    missing = str(uuid.uuid4())
    wanted = [*upscales, upscales[0], pose]
    asked = [(job.table, job.id) for job in wanted]
    asked += [(upscales[0].table, missing), (pose.table, upscales[1].id)]
    with statements(store) as seen:
        results = await behind_a_held_batch(
            store._thread_read,
            lambda: asyncio.gather(*(store.get_job(table, job_id) for table, job_id in asked)),
        )

    alone = [await store.get_job(table, job_id) for table, job_id in asked]  # one by one
    assert results == alone  # every field of every row, read together or alone
    assert [(r.table, r.id) if r else None for r in results] == [
        (job.table, job.id) for job in wanted
    ] + [None, None]
    assert seen == ["SELECT", "SELECT"]  # one per table: 7 before


async def test_jobs_read_together_pad_the_in_list_to_a_power_of_two(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three ids are read with a list of four (the last repeated): one statement per power
    of two, not one per count (508 compiled statements, 77 MB per process, in review)."""
    store: JobStore = core.store
    jobs = [await core.running(user=f"u{i}") for i in range(2)] + [await core.submit(user="u5")]
    sizes: list[int] = []
    real = store_module._select_jobs

    def spy(table: str, n: int) -> Any:
        sizes.append(n)
        return real(table, n)

    monkeypatch.setattr(store_module, "_select_jobs", spy)
    reads: list[Any] = [store_module._JobRead(job.table, job.id) for job in jobs]

    together = await store._in_thread(store._reads_in_thread, reads)

    assert sizes == [4]
    assert together == [await core.job(job) for job in jobs]


async def test_a_read_that_fails_fails_alone(core: Core) -> None:
    store: JobStore = core.store
    job = await core.running()

    def broken(_conn: sa.Connection) -> None:
        raise RuntimeError("this read fails")

    results = await asyncio.gather(
        store.get_job(job.table, job.id),
        store._thread_read(broken),
        store.get_job(job.table, job.id),
        return_exceptions=True,
    )

    assert isinstance(results[1], RuntimeError)
    assert [r.id for r in (results[0], results[2])] == [job.id, job.id]  # type: ignore[union-attr]


def count_hand_offs(store: JobStore) -> list[int]:
    """Counts the store's hand-offs of work to its threads (one item)."""
    count = [0]
    real_in_thread = store._in_thread

    async def counted(fn: Any, *args: Any) -> Any:
        count[0] += 1
        return await real_in_thread(fn, *args)

    store._in_thread = counted  # type: ignore[method-assign]
    return count


async def test_a_finish_is_two_statements_and_gives_the_slot_back_once(core: Core) -> None:
    """The job's terminal row and its slot flag in one statement, then the account's count —
    on PostgreSQL both in one (three statements before); a job still queued holds no slot and
    frees none."""
    store: JobStore = core.store
    running = await core.running()
    queued = await core.submit(user="u2")  # not dispatched: still queued
    in_flight = (await store.get_account(running.api_account or "")).in_flight  # type: ignore[union-attr]

    with statements(store) as seen:
        done = await store.finish(
            running.table, running.id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK)
        )
    ended = await store.finish(
        queued.table, queued.id, FinishRequest(JobStatus.CANCELLED, FinishedBy.USER)
    )

    # PostgreSQL: the job and the account in one statement (data-modifying CTEs)
    assert seen == (["WITH"] if store.dialect == "postgresql" else ["UPDATE", "UPDATE"])
    assert done is not None
    assert done.changed
    assert not done.job.holds_slot
    assert ended is not None
    assert ended.changed
    assert not ended.job.holds_slot
    assert (await core.job(running)).holds_slot is False
    account = await store.get_account(running.api_account or "")
    assert account is not None
    assert account.in_flight == in_flight - 1


@pytest.mark.postgres
async def test_a_finish_racing_a_claim_on_postgres_gives_the_slot_back(
    pg_server_url: str,  # noqa: F811  (the fixture, imported above)
    tmp_path: Path,
) -> None:
    """Another process claims a queued job (its transaction still open) while this one
    cancels it. The finish's first statement saw the job queued (no slot) and skipped it; the
    second waited for the claim's lock and then finished the claimed row: its slot was never
    given back, and the count reconciliation agreed with the leak (found in review)."""
    url = create_database(pg_server_url)
    core = await build_core(
        tmp_path, database_url=url.replace("postgresql://", "postgresql+psycopg://")
    )
    store: JobStore = core.store
    other = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        job = await core.submit(user="u2")  # queued: no slot
        table = schema.job_tables[job.table]
        accounts = schema.runninghub_accounts
        claim = other.connect()
        claimed = claim.begin()

        def claim_it() -> None:  # what a claim writes, not yet committed
            claim.execute(
                table.update()
                .where(table.c.id == job.id)
                .values(status="starting", holds_slot=True, api_account=ACCOUNT)
            )
            claim.execute(
                accounts.update()
                .where(accounts.c.account_name == ACCOUNT)
                .values(in_flight=accounts.c.in_flight + 1)
            )

        await asyncio.to_thread(claim_it)
        finish = asyncio.create_task(
            store.finish(job.table, job.id, FinishRequest(JobStatus.CANCELLED, FinishedBy.USER))
        )

        def finish_waits_for_the_claim() -> bool:
            with other.connect() as look:
                waiting = look.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
                return bool(waiting.scalar())

        await wait_for_async(
            lambda: asyncio.to_thread(finish_waits_for_the_claim), what="the finish to wait"
        )
        await asyncio.to_thread(claimed.commit)
        claim.close()
        result = await finish

        assert result is not None
        assert result.changed
        assert result.job.status is JobStatus.CANCELLED
        assert not (await core.job(job)).holds_slot
        account = await store.get_account(ACCOUNT)
        assert account is not None
        assert account.in_flight == 0
    finally:
        other.dispose()
        await core.store.close()
        await core.webhooks.events.aclose()
        await core.emulator.shutdown()
        await core.client.aclose()


def blocked_read(started: threading.Event, release: threading.Event) -> Any:
    """A read that holds its thread until ``release`` is set."""

    def read(_conn: sa.Connection) -> int:
        started.set()
        release.wait(10)
        return 42

    return read


async def test_a_read_cancelled_in_its_batch_is_cancelled_at_once(core: Core) -> None:
    """A read is not a write to follow up: its caller is cancelled at once, as when each read
    had a thread of its own — it waited for the batch and carried on with the answer (review)."""
    store: JobStore = core.store
    started, release = threading.Event(), threading.Event()
    reading = asyncio.create_task(store._thread_read(blocked_read(started, release)))
    try:
        await wait_for_async(lambda: _now(started.is_set()), what="the read to start")
        reading.cancel()
        done, _ = await asyncio.wait([reading], timeout=5)
        assert reading in done
        assert reading.cancelled()
    finally:
        release.set()
    job = await core.running()
    assert (await store.get_job(job.table, job.id)) is not None  # the next batch runs


async def test_a_slow_read_runs_alone_and_holds_up_no_batch(core: Core) -> None:
    """A read that may be slow (the durations' sort over every completed job) held up every
    read batched behind it — a webhook's read waited 0.8 s (review)."""
    store: JobStore = core.store
    job = await core.running()
    started, release = threading.Event(), threading.Event()
    slow = asyncio.create_task(store._thread_read(blocked_read(started, release), quick=False))
    try:
        await wait_for_async(lambda: _now(started.is_set()), what="the slow read to start")
        found = await asyncio.wait_for(store.get_job(job.table, job.id), 5)
        assert found is not None
        assert not slow.done()
    finally:
        release.set()
    assert await slow == 42


async def _now(value: bool) -> bool:
    return value
