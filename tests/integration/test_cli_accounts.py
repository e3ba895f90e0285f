"""The CLI never touches the RunningHub accounts a server was configured with (audit finding:
``token --admin`` used to replace the production key with a generated one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from arcano_tools.store import JobStore


def run_cli(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "arcano_tools", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


async def test_minting_tokens_leaves_the_configured_account_alone(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'arcano.db'}"
    store = JobStore.from_url(url)
    await store.migrate()
    await store.upsert_account("arcano_main", "p" * 32, max_concurrent=7)  # the server's config
    await store.close()
    # a shell with none of the server's RunningHub settings, as an operator would have
    env = {
        "DATABASE_URL": url.replace("+aiosqlite", ""),
        "ARCANO_DATA_DIR": str(tmp_path),
        "RUNNINGHUB_API_KEY": "",
        "RUNNINGHUB_API_URL": "",
    }

    run_cli("token", "--user", "ops", "--admin", env=env)
    run_cli("token", "--user", "alice", env=env)
    run_cli("service-key", env=env)

    store = JobStore.from_url(url)
    account = await store.get_account("arcano_main")
    admin = await store.get_user("ops")
    await store.close()
    assert account is not None
    assert (account.api_key, account.max_concurrent) == ("p" * 32, 7)
    assert admin is not None
    assert admin.is_admin
