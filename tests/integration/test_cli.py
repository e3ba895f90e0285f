"""The CLI as scripts use it: a subprocess, its output used as a credential."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from arcano_tools import constants as c
from arcano_tools.services.auth import verify_user_token
from arcano_tools.store import JobStore
from tests.support.servers import JWT_SECRET, SERVICE_KEY, Backend


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


def test_token_prints_a_user_token_the_api_accepts(backend: Backend, client: httpx.Client) -> None:
    token = run_cli("token", "--user", "script-user", env=backend.env)

    assert verify_user_token(JWT_SECRET, token) == "script-user"
    me = client.get(backend.url + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == {"userId": "script-user", "credits": c.STARTING_CREDITS}


def test_service_key_prints_the_configured_key(backend: Backend) -> None:
    assert run_cli("service-key", env=backend.env) == SERVICE_KEY


def test_service_key_is_generated_once_per_data_dir(tmp_path: Path) -> None:
    env = {"ARCANO_DATA_DIR": str(tmp_path), "ARCANO_SERVICE_KEY": ""}
    first = run_cli("service-key", env=env)
    second = run_cli("service-key", env=env)
    assert first == second
    assert len(first) > 30
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


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


def test_serve_api_on_demo_defaults_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    """Audit finding: production secrets without RUNNINGHUB_API_URL ran on the emulator."""
    env = {
        **os.environ,
        "ARCANO_DATA_DIR": str(tmp_path),
        "ARCANO_SERVICE_KEY": SERVICE_KEY,
        "ARCANO_JWT_SECRET": JWT_SECRET,
        "RUNNINGHUB_API_URL": "",
        "ARCANO_DEMO": "false",
        "REFLEX_ENV_MODE": "",
    }
    out = subprocess.run(
        [sys.executable, "-m", "arcano_tools", "serve-api", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    (line,) = out.stderr.strip().splitlines()[-1:]
    assert line.startswith("arcano_tools: refusing to start: RUNNINGHUB_API_URL")
    assert "Traceback" not in out.stderr
