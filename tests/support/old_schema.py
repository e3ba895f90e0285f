"""A database left by an older version of the app, for the migration tests: migrated up to a
given version only, with a user, an account holding one slot and one active job in it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import sqlalchemy as sa

from arcano_tools.domain.records import utcnow
from arcano_tools.store import JobStore, migrations

TABLE = "upscaler_jobs"


async def old_database(
    url: str, version: int, *, credits: int, job: Mapping[str, object]
) -> list[int]:
    """Migrate ``url`` up to ``version`` and write user ``u`` (``credits``), account ``acc``
    (one slot in flight) and job ``j1`` of ``TABLE``, started a minute ago and holding that
    slot, with ``job``'s columns on top (its status, cost, task or claim id). Returns the
    versions applied."""
    old = JobStore.from_url(url)
    steps = migrations.MIGRATIONS
    migrations.MIGRATIONS = [step for step in steps if step[0] <= version]
    try:
        applied = await old.migrate()
        async with old.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO users (id, credits, is_admin, is_anonymous, created_at) "
                    "VALUES ('u', :credits, false, false, CURRENT_TIMESTAMP)"
                ),
                {"credits": credits},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO runninghub_accounts (account_name, api_key, max_concurrent, "
                    "in_flight, enabled, updated_at) VALUES ('acc', :k, 2, 1, true, :now)"
                ),
                {"k": "k" * 32, "now": utcnow()},
            )
            names = ", ".join(job)
            values = ", ".join(f":{name}" for name in job)
            await conn.execute(
                sa.text(
                    f"INSERT INTO {TABLE} (id, user_id, inputs, created_at, updated_at, "
                    f"started_at, holds_slot, attempts, check_count, api_account, {names}) "
                    f"VALUES ('j1', 'u', '{{}}', :t, :t, :t, true, 0, 0, 'acc', {values})"
                ),
                {"t": utcnow() - timedelta(minutes=1), **job},
            )
    finally:
        migrations.MIGRATIONS = steps
        await old.close()
    return applied
