"""Runtime settings from the environment: names, derived URLs, messages and generated secrets."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from arcano_tools import constants as c
from arcano_tools.config import EMULATOR_MOUNT_PATH, Settings, load_settings
from tests.support.env import settings_env_names


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment whose data directory is this test's tmp_path."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCANO_DATA_DIR", str(tmp_path))
    return monkeypatch


def test_the_documented_variable_names_are_the_ones_read() -> None:
    assert {
        "ARCANO_DATA_DIR",
        "DATABASE_URL",
        "RUNNINGHUB_API_URL",
        "RUNNINGHUB_API_KEY",
        "WATCHDOG_ENABLED",
        "WATCHDOG_INITIAL_DELAY_MS",
        "WATCHDOG_POLL_INTERVAL_MS",
        "WATCHDOG_MAX_TIMEOUT_MS",
        "SERVER_WATCHDOG_ENABLED",
        "ARCANO_SERVICE_KEY",
        "ARCANO_JWT_SECRET",
        "SUPABASE_JWT_SECRET",
    } <= settings_env_names()


# --- values from the environment --------------------------------------------------------------


def test_the_data_dir_comes_from_arcano_data_dir(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().data_dir == tmp_path


def test_the_plans_watchdog_variables_are_read_by_their_names(env: pytest.MonkeyPatch) -> None:
    env.setenv("WATCHDOG_ENABLED", "false")
    env.setenv("WATCHDOG_INITIAL_DELAY_MS", "1500")
    env.setenv("WATCHDOG_POLL_INTERVAL_MS", "250")
    env.setenv("WATCHDOG_MAX_TIMEOUT_MS", "90000")
    env.setenv("SERVER_WATCHDOG_ENABLED", "0")
    s = Settings()
    assert s.watchdog_enabled is False
    assert s.watchdog_initial_delay_ms == 1500
    assert s.watchdog_poll_interval_ms == 250
    assert s.watchdog_max_timeout_ms == 90000
    assert s.server_watchdog_enabled is False


def test_the_watchdog_defaults_are_the_plans(env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.watchdog_enabled is True
    assert s.server_watchdog_enabled is True
    assert s.watchdog_initial_delay_ms == 30_000 == c.WATCHDOG_INITIAL_DELAY_MS
    assert s.watchdog_poll_interval_ms == 15_000 == c.WATCHDOG_POLL_INTERVAL_MS
    assert s.watchdog_max_timeout_ms == 720_000 == c.WATCHDOG_MAX_TIMEOUT_MS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WATCHDOG_POLL_INTERVAL_MS", "10"),
        ("WATCHDOG_MAX_TIMEOUT_MS", "50"),
        ("WATCHDOG_INITIAL_DELAY_MS", "-1"),
        ("RUNNINGHUB_MAX_CONCURRENT", "0"),
        ("UPSTREAM_MAX_RPS", "0"),
        ("WATCHDOG_ENABLED", "maybe"),
    ],
)
def test_an_out_of_range_or_unreadable_value_is_refused_at_start_up(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_supabase_jwt_secret_is_accepted_as_the_jwt_secret(env: pytest.MonkeyPatch) -> None:
    env.setenv("SUPABASE_JWT_SECRET", "supabase-" + "s" * 40)
    s = Settings()
    assert s.jwt_secret == "supabase-" + "s" * 40
    assert s.effective_jwt_secret == "supabase-" + "s" * 40


def test_arcano_jwt_secret_wins_over_supabases_name(env: pytest.MonkeyPatch) -> None:
    env.setenv("SUPABASE_JWT_SECRET", "supabase-" + "s" * 40)
    env.setenv("ARCANO_JWT_SECRET", "arcano-" + "a" * 40)
    assert Settings().jwt_secret == "arcano-" + "a" * 40


def test_explicit_overrides_win_over_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("WATCHDOG_MAX_TIMEOUT_MS", "90000")
    assert load_settings(watchdog_max_timeout_ms=60_000).watchdog_max_timeout_ms == 60_000


# --- database URL -----------------------------------------------------------------------------


def test_without_database_url_the_database_is_sqlite_under_the_data_dir(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = Settings().sqlalchemy_url
    assert url == f"sqlite+aiosqlite:///{(tmp_path / 'arcano.db').resolve()}"


def test_a_relative_data_dir_gives_an_absolute_sqlite_path(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.chdir(tmp_path)
    env.setenv("ARCANO_DATA_DIR", ".data")
    assert Settings().sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/.data/arcano.db"


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        (
            "postgres://postgres:pw@db.abcd.supabase.co:5432/postgres",
            "postgresql+psycopg://postgres:pw@db.abcd.supabase.co:5432/postgres",
        ),
        (
            "postgresql://u:p@localhost/arcano?sslmode=require",
            "postgresql+psycopg://u:p@localhost/arcano?sslmode=require",
        ),
        ("sqlite:////var/lib/arcano/a.db", "sqlite+aiosqlite:////var/lib/arcano/a.db"),
        ("sqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
    ids=["postgres", "postgresql", "sqlite-abs", "sqlite-rel", "async-pg", "async-sqlite"],
)
def test_database_url_is_mapped_to_the_async_driver(
    env: pytest.MonkeyPatch, database_url: str, expected: str
) -> None:
    env.setenv("DATABASE_URL", database_url)
    assert Settings().sqlalchemy_url == expected


@pytest.mark.parametrize(
    ("database_url", "forced", "pooled", "driver_url"),
    [
        (
            "postgres://postgres.ref:pw@aws-0-sa-east-1.pooler.supabase.com:6543/postgres",
            None,
            True,
            "postgresql+psycopg://postgres.ref:pw@aws-0-sa-east-1.pooler.supabase.com:6543/postgres",
        ),
        (
            "postgres://postgres.ref:pw@aws-0-sa-east-1.pooler.supabase.com:5432/postgres",
            None,
            False,
            "postgresql+psycopg://postgres.ref:pw@aws-0-sa-east-1.pooler.supabase.com:5432/postgres",
        ),
        (
            "postgresql://u:p@bouncer:6432/db?sslmode=require&pgbouncer=true",
            None,
            True,
            "postgresql+psycopg://u:p@bouncer:6432/db?sslmode=require",
        ),
        (
            "postgresql://u:p@bouncer:6432/db",
            "true",
            True,
            "postgresql+psycopg://u:p@bouncer:6432/db",
        ),
        ("postgresql://u:p@db:6543/db", "false", False, "postgresql+psycopg://u:p@db:6543/db"),
        ("", "true", False, None),
    ],
    ids=["supabase-6543", "supabase-5432", "pgbouncer-param", "forced-on", "forced-off", "sqlite"],
)
def test_a_transaction_pooler_is_detected_or_chosen(
    env: pytest.MonkeyPatch,
    database_url: str,
    forced: str | None,
    pooled: bool,
    driver_url: str | None,
) -> None:
    """Behind a pooler in transaction mode the store must prepare nothing on the server; the
    URL flag is for us, never handed to the driver (libpq refuses unknown parameters)."""
    env.setenv("DATABASE_URL", database_url)
    if forced is not None:
        env.setenv("DATABASE_TRANSACTION_POOLER", forced)
    settings = Settings()
    assert settings.transaction_pooler is pooled
    if driver_url is not None:
        assert settings.sqlalchemy_url == driver_url


# --- timeout message --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "message"),
    [
        (720_000, "Timeout: processamento excedeu o tempo limite (12 minutos)"),
        (60_000, "Timeout: processamento excedeu o tempo limite (1 minuto)"),
        (120_000, "Timeout: processamento excedeu o tempo limite (2 minutos)"),
        (4_000, "Timeout: processamento excedeu o tempo limite (4 segundos)"),
        (1_000, "Timeout: processamento excedeu o tempo limite (1 segundo)"),
        (90_000, "Timeout: processamento excedeu o tempo limite (90 segundos)"),
        (400, "Timeout: processamento excedeu o tempo limite (1 segundo)"),
    ],
)
def test_the_timeout_message_follows_the_max_timeout(
    env: pytest.MonkeyPatch, ms: int, message: str
) -> None:
    env.setenv("WATCHDOG_MAX_TIMEOUT_MS", str(ms))
    assert Settings().timeout_message == message


def test_the_default_timeout_message_is_the_plans(env: pytest.MonkeyPatch) -> None:
    assert (
        Settings().timeout_message == "Timeout: processamento excedeu o tempo limite (12 minutos)"
    )


# --- watchdog flags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watchdog", "server_watchdog", "active"),
    [("true", "true", True), ("false", "true", False), ("true", "false", False)],
)
def test_the_server_watchdog_runs_only_when_both_flags_are_on(
    env: pytest.MonkeyPatch, watchdog: str, server_watchdog: str, active: bool
) -> None:
    env.setenv("WATCHDOG_ENABLED", watchdog)
    env.setenv("SERVER_WATCHDOG_ENABLED", server_watchdog)
    assert Settings().server_watchdog_active is active


# --- RunningHub: emulator or the real API -----------------------------------------------------


def test_without_runninghub_api_url_the_emulator_on_our_backend_is_used(
    env: pytest.MonkeyPatch,
) -> None:
    s = Settings()
    assert s.emulated is True
    assert s.runninghub_base_url == f"http://127.0.0.1:8000{EMULATOR_MOUNT_PATH}"
    assert s.runninghub_base_url == "http://127.0.0.1:8000/_emulator/runninghub"


def test_the_emulator_url_follows_the_public_base_url_and_port(env: pytest.MonkeyPatch) -> None:
    env.setenv("REFLEX_BACKEND_PORT", "9123")
    assert Settings().runninghub_base_url == "http://127.0.0.1:9123/_emulator/runninghub"
    env.setenv("PUBLIC_BASE_URL", "https://arcano.example/")
    s = Settings()
    assert s.own_base_url == "https://arcano.example"
    assert s.runninghub_base_url == "https://arcano.example/_emulator/runninghub"


def test_with_runninghub_api_url_the_real_api_is_used_without_a_trailing_slash(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("RUNNINGHUB_API_URL", "https://www.runninghub.ai/")
    env.setenv("PUBLIC_BASE_URL", "https://arcano.example")
    s = Settings()
    assert s.emulated is False
    assert s.runninghub_base_url == "https://www.runninghub.ai"


# --- generated secrets ------------------------------------------------------------------------


def test_generated_secrets_are_written_once_with_mode_0600(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = Settings()
    keys = (
        first.effective_service_key,
        first.effective_jwt_secret,
        first.effective_runninghub_api_key,
    )
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.stat()

    second = Settings()
    assert (
        second.effective_service_key,
        second.effective_jwt_secret,
        second.effective_runninghub_api_key,
    ) == keys
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert json.loads(path.read_text()) == {
        "service_key": keys[0],
        "jwt_secret": keys[1],
        "emulator_api_key": keys[2],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.json"]  # no temp file left


def test_generated_secrets_have_the_right_shape(env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.effective_service_key.startswith("svc_")
    assert len(s.effective_service_key) > 40
    assert len(s.effective_jwt_secret.encode()) >= 32  # long enough for HS256
    assert len(s.effective_runninghub_api_key) == 32
    int(s.effective_runninghub_api_key, 16)  # hex, like a real RunningHub key


def test_each_data_dir_gets_its_own_secrets(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    one = Settings().effective_service_key
    env.setenv("ARCANO_DATA_DIR", str(tmp_path / "other"))
    other = Settings()
    assert other.effective_service_key != one
    assert (tmp_path / "other" / "secrets.json").exists()


def test_configured_secrets_are_used_and_nothing_is_generated(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("ARCANO_SERVICE_KEY", "svc_configured_" + "x" * 30)
    env.setenv("SUPABASE_JWT_SECRET", "jwt_configured_" + "y" * 30)
    env.setenv("RUNNINGHUB_API_KEY", "f" * 32)
    s = Settings()
    assert s.effective_service_key == "svc_configured_" + "x" * 30
    assert s.effective_jwt_secret == "jwt_configured_" + "y" * 30
    assert s.effective_runninghub_api_key == "f" * 32
    assert not (tmp_path / "secrets.json").exists()


def test_the_webhook_secret_is_derived_from_the_service_key_and_differs_from_it(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("ARCANO_SERVICE_KEY", "svc_" + "k" * 40)
    s = Settings()
    assert s.webhook_secret == b"webhook:svc_" + b"k" * 40
    assert s.webhook_secret != s.effective_service_key.encode()
