"""Runtime settings, read from the environment (names fixed by the team's design document, kept
with the shared docs outside this repository; README.md's "Configuration" table lists them).

Everything has an embedded default so ``make run`` works on a fresh machine: a SQLite file
under ``.data/``, the built-in RunningHub emulator, and secrets generated once into
``.data/secrets.json`` (mode 0600). Production sets the same names to real values.
"""

from __future__ import annotations

import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from arcano_tools import constants
from arcano_tools.domain.urls import RUNNINGHUB_FILE_HOSTS, OutputHosts

#: Where the embedded emulator is mounted on our own backend.
EMULATOR_MOUNT_PATH = "/_emulator/runninghub"
#: ``REFLEX_ENV_MODE`` of ``reflex run`` without ``--env prod`` (``make run``).
DEV_MODE = "dev"
#: ``REFLEX_ENV_MODE`` of ``reflex run --env prod``.
PROD_MODE = "prod"
#: Name of the account the plan falls back to (``job.api_account || 'arcano_main'``).
DEFAULT_ACCOUNT_NAME = "arcano_main"
#: Port of Supabase's pooler (Supavisor) in transaction mode; 5432 is its session mode.
TRANSACTION_POOLER_PORT = 6543
#: ``DATABASE_URL`` query parameter that says "a PgBouncer in transaction mode" (Prisma's
#: spelling); removed before the URL reaches the driver, which would refuse it.
PGBOUNCER_PARAM = "pgbouncer"


class Settings(BaseSettings):
    """The environment, typed. Unknown variables are ignored."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path(".data"), alias="ARCANO_DATA_DIR")
    database_url: str = Field(default="", alias="DATABASE_URL")
    #: PostgreSQL is reached through a pooler in transaction mode (no server-side prepared
    #: statements). Unset: detected from ``DATABASE_URL`` (see :attr:`transaction_pooler`).
    database_transaction_pooler: bool | None = Field(
        default=None, alias="DATABASE_TRANSACTION_POOLER"
    )
    runninghub_api_url: str = Field(default="", alias="RUNNINGHUB_API_URL")
    #: Key and concurrency of the default account; production may add more rows to the table.
    runninghub_api_key: str = Field(default="", alias="RUNNINGHUB_API_KEY")
    runninghub_max_concurrent: int = Field(default=2, alias="RUNNINGHUB_MAX_CONCURRENT", ge=1)
    #: Optional JSON overriding tools' app ids / node mappings (see :mod:`arcano_tools.domain.tools`).
    runninghub_tools_json: str = Field(default="", alias="RUNNINGHUB_TOOLS_JSON")
    #: Comma-separated host patterns outputs may come from; empty: RunningHub's file hosts.
    runninghub_output_hosts: str = Field(default="", alias="RUNNINGHUB_OUTPUT_HOSTS")
    public_base_url: str = Field(default="", alias="PUBLIC_BASE_URL")
    backend_port: int = Field(default=8000, alias="REFLEX_BACKEND_PORT")

    watchdog_enabled: bool = Field(default=True, alias="WATCHDOG_ENABLED")
    watchdog_initial_delay_ms: int = Field(
        default=constants.WATCHDOG_INITIAL_DELAY_MS, alias="WATCHDOG_INITIAL_DELAY_MS", ge=0
    )
    watchdog_poll_interval_ms: int = Field(
        default=constants.WATCHDOG_POLL_INTERVAL_MS, alias="WATCHDOG_POLL_INTERVAL_MS", ge=50
    )
    watchdog_max_timeout_ms: int = Field(
        default=constants.WATCHDOG_MAX_TIMEOUT_MS, alias="WATCHDOG_MAX_TIMEOUT_MS", ge=100
    )
    server_watchdog_enabled: bool = Field(default=True, alias="SERVER_WATCHDOG_ENABLED")
    #: A page watchdog whose tab disconnected keeps going this long (a reload reconnects).
    page_watchdog_grace_ms: int = Field(
        default=constants.PAGE_WATCHDOG_GRACE_MS, alias="ARCANO_PAGE_WATCHDOG_GRACE_MS", ge=0
    )
    #: Upstream caps shared by every caller in this process (watchdogs, sync, dispatch).
    upstream_max_concurrency: int = Field(
        default=constants.UPSTREAM_MAX_CONCURRENCY, alias="UPSTREAM_MAX_CONCURRENCY", ge=1
    )
    upstream_max_rps: float = Field(
        default=constants.UPSTREAM_MAX_RPS, alias="UPSTREAM_MAX_RPS", gt=0
    )
    #: A job ``starting`` for this long with no task id was left by a stopped process.
    starting_stuck_ms: int = Field(
        default=constants.STARTING_STUCK_MS, alias="ARCANO_STARTING_STUCK_MS", ge=100
    )

    service_key: str = Field(default="", alias="ARCANO_SERVICE_KEY")
    jwt_secret: str = Field(
        default="", validation_alias=AliasChoices("ARCANO_JWT_SECRET", "SUPABASE_JWT_SECRET")
    )
    redis_url: str = Field(default="", alias="REFLEX_REDIS_URL")
    supabase_url: str = Field(default="", alias="SUPABASE_URL")
    supabase_service_role_key: str = Field(default="", alias="SUPABASE_SERVICE_ROLE_KEY")
    # --- storage and results that last (inputs and results; docs/jobs.md) ---------------------
    #: The private Supabase Storage bucket for inputs and results (created if missing).
    supabase_storage_bucket: str = Field(default="arcano", alias="SUPABASE_STORAGE_BUCKET")
    #: Copy each result into our storage before completing the job (RunningHub's links last
    #: about a day); ``false`` completes with RunningHub's URL at once.
    keep_results: bool = Field(default=True, alias="ARCANO_KEEP_RESULTS")
    #: Wait after a failed copy, doubled at each try (5 tries: 40+80+160+320 s = 10 minutes).
    output_copy_retry_base_ms: int = Field(
        default=40_000, alias="ARCANO_OUTPUT_COPY_RETRY_BASE_MS", ge=10
    )
    #: How long a copy may run before another process's sweep takes it over.
    output_copy_lease_ms: int = Field(default=180_000, alias="ARCANO_OUTPUT_COPY_LEASE_MS", ge=100)
    #: The project's anon (publishable) key: with ``SUPABASE_URL``, browsers sign in on Supabase.
    supabase_anon_key: str = Field(default="", alias="SUPABASE_ANON_KEY")
    log_format: str = Field(default="text", alias="ARCANO_LOG_FORMAT")
    #: The demo: the embedded RunningHub emulator, generated secrets and anonymous users with
    #: starting credits. ``make run`` (Reflex's dev mode) is the demo without asking.
    demo: bool = Field(default=False, alias="ARCANO_DEMO")
    #: Set by ``reflex run`` for its backend: ``dev`` (``make run``) or ``prod``.
    reflex_env_mode: str = Field(default="", alias="REFLEX_ENV_MODE")
    #: Granian workers of ``reflex run --env prod``; unset: Reflex's own count.
    granian_workers: int | None = Field(default=None, alias="GRANIAN_WORKERS", ge=1)
    #: Credits a new user receives; default: ``STARTING_CREDITS`` in the demo, 0 otherwise.
    new_user_credits: int | None = Field(default=None, alias="ARCANO_NEW_USER_CREDITS", ge=0)

    # --- derived values ---------------------------------------------------------------------

    @property
    def supabase_storage(self) -> bool:
        """Inputs and results live in Supabase Storage (else: the local data directory)."""
        return bool(self.supabase_url and self.supabase_service_role_key)

    @property
    def emulated(self) -> bool:
        """True when RunningHub is the embedded emulator (no ``RUNNINGHUB_API_URL``)."""
        return not self.runninghub_api_url

    @cached_property
    def output_hosts(self) -> OutputHosts:
        """Hosts an output URL may name: RunningHub's file hosts (or the configured patterns)
        and always the host RunningHub calls go to (the emulator, a stand-in). Built once:
        every result shown asks it (the page's size line), and parsing the patterns again
        was 2 % of a burst of a thousand job ends."""
        configured = [h for h in self.runninghub_output_hosts.split(",") if h.strip()]
        api_host = urlsplit(self.runninghub_base_url).hostname or ""
        return OutputHosts.of(configured or RUNNINGHUB_FILE_HOSTS, also=[api_host])

    @property
    def demo_chosen(self) -> bool:
        """Someone chose the demo: ``ARCANO_DEMO=true``, or ``reflex run`` in dev mode."""
        return self.demo or self.reflex_env_mode == DEV_MODE

    @property
    def supabase_auth(self) -> bool:
        """Browsers sign in with Supabase Auth (``SUPABASE_URL`` and ``SUPABASE_ANON_KEY``)."""
        return bool(self.supabase_url and self.supabase_anon_key)

    @property
    def supabase_issuer(self) -> str:
        """The ``iss`` claim of the project's access tokens."""
        return self.supabase_url.rstrip("/") + "/auth/v1" if self.supabase_url else ""

    @property
    def demo_credits(self) -> bool:
        """The demo's emulator runs the jobs: credits cost no real GPU time."""
        return self.emulated and self.demo_chosen

    @property
    def anonymous_users(self) -> bool:
        """Browsers get an anonymous user (with starting credits) only on the demo's emulator
        and only when nobody can sign in: with a real RunningHub every credit is paid for with
        real GPU time, and with Supabase Auth every user is a signed-in person."""
        return self.demo_credits and not self.supabase_auth

    @property
    def starting_credits(self) -> int:
        """Credits granted once to a new user (bounded: never more than the demo's grant)."""
        if self.new_user_credits is not None:
            return min(self.new_user_credits, constants.MAX_NEW_USER_CREDITS)
        return constants.STARTING_CREDITS if self.demo_credits else 0

    def startup_problem(self) -> str | None:
        """Why a server must not start with these settings, in one line (``None``: it may).

        A demo default must never fail open: outside the demo, an empty
        ``RUNNINGHUB_API_URL`` would silently run every job on the emulator, and generated
        secrets would change with the data directory.
        """
        if self.emulated and self.several_workers:
            return (
                "refusing to start: the built-in RunningHub emulator keeps its tasks in one "
                "process, but REFLEX_REDIS_URL in prod mode starts several workers. Run it alone "
                "(python -m arcano_tools emulator --port 8100) and set RUNNINGHUB_API_URL to it, "
                "or set GRANIAN_WORKERS=1."
            )
        if self.demo_chosen:
            return None
        missing = [
            name
            for name, value in (
                ("RUNNINGHUB_API_URL", self.runninghub_api_url),
                ("RUNNINGHUB_API_KEY", self.runninghub_api_key),
                ("ARCANO_SERVICE_KEY", self.service_key),
                ("ARCANO_JWT_SECRET (or SUPABASE_JWT_SECRET)", self.jwt_secret),
            )
            if not value
        ]
        if not missing:
            return None
        return (
            f"refusing to start: {', '.join(missing)} not set. Production needs them "
            "(RUNNINGHUB_API_URL=https://www.runninghub.ai); for the built-in RunningHub "
            "emulator and generated secrets set ARCANO_DEMO=true."
        )

    @property
    def several_workers(self) -> bool:
        """``reflex run --env prod`` with Redis starts ``2 × cores + 1`` granian workers (at most
        Reflex's cap) unless ``GRANIAN_WORKERS`` says how many; without Redis, one."""
        return (
            self.reflex_env_mode == PROD_MODE and bool(self.redis_url) and self.granian_workers != 1
        )

    @property
    def own_base_url(self) -> str:
        """The backend's own URL: the base for webhook URLs when none is configured."""
        return (self.public_base_url or f"http://127.0.0.1:{self.backend_port}").rstrip("/")

    @property
    def runninghub_base_url(self) -> str:
        """Where the RunningHub client sends its calls."""
        if self.runninghub_api_url:
            return self.runninghub_api_url.rstrip("/")
        return self.own_base_url + EMULATOR_MOUNT_PATH

    @property
    def sqlalchemy_url(self) -> str:
        """``DATABASE_URL`` in the async driver's dialect (``postgres://`` as Supabase prints it)."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'arcano.db').resolve()}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return _without_pgbouncer_param("postgresql+psycopg://" + url[len(prefix) :])
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return _without_pgbouncer_param(url)

    @property
    def transaction_pooler(self) -> bool:
        """PostgreSQL through a pooler in transaction mode: every transaction may run on
        another server connection, so the store prepares no statement on the server.
        ``DATABASE_TRANSACTION_POOLER`` decides when set; otherwise yes for Supabase's
        transaction-mode port (6543) or ``?pgbouncer=true`` in ``DATABASE_URL``."""
        if not self.sqlalchemy_url.startswith("postgresql"):
            return False
        if self.database_transaction_pooler is not None:
            return self.database_transaction_pooler
        parts = urlsplit(self.database_url)
        flagged = dict(parse_qsl(parts.query)).get(PGBOUNCER_PARAM, "").lower() == "true"
        return flagged or parts.port == TRANSACTION_POOLER_PORT

    @cached_property
    def _generated(self) -> dict[str, str]:
        return _generated_secrets(self.data_dir)

    @property
    def effective_service_key(self) -> str:
        """``ARCANO_SERVICE_KEY``, or one generated once for this data directory."""
        return self.service_key or self._generated["service_key"]

    @property
    def effective_jwt_secret(self) -> str:
        """The HS256 key of user tokens (Supabase's JWT secret in production)."""
        return self.jwt_secret or self._generated["jwt_secret"]

    @property
    def effective_runninghub_api_key(self) -> str:
        """The default account's key; the emulator accepts any 32-character key."""
        return self.runninghub_api_key or self._generated["emulator_api_key"]

    @property
    def webhook_secret(self) -> bytes:
        """Key of the per-job webhook tokens, derived so it never equals a bearer credential."""
        return ("webhook:" + self.effective_service_key).encode()

    @property
    def timeout_message(self) -> str:
        """The plan's timeout message, with the minutes following the setting."""
        return constants.TIMEOUT_MESSAGE_TEMPLATE.format(
            limit=_duration_pt(self.watchdog_max_timeout_ms)
        )

    @property
    def server_watchdog_active(self) -> bool:
        """The plan's flag turns every watchdog off at once."""
        return self.watchdog_enabled and self.server_watchdog_enabled


def _without_pgbouncer_param(url: str) -> str:
    """``url`` without ``pgbouncer=…`` (libpq refuses unknown URI query parameters)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != PGBOUNCER_PARAM]
    if len(kept) == len(query):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _duration_pt(ms: int) -> str:
    """``720000`` → ``12 minutos`` (the plan's wording); short test timeouts in seconds."""
    if ms % 60_000 == 0:
        n, unit = ms // 60_000, "minuto"
    else:
        n, unit = max(1, round(ms / 1000)), "segundo"
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _generated_secrets(data_dir: Path) -> dict[str, str]:
    """Read or create ``secrets.json``; created atomically so two processes agree on it."""
    path = data_dir / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {
        "service_key": "svc_" + secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(48),
        "emulator_api_key": secrets.token_hex(16),  # 32 characters, like a real key
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data))
    try:
        os.link(tmp, path)  # fails if another process won the race: then read theirs
    except FileExistsError:
        data = json.loads(path.read_text())
    finally:
        tmp.unlink(missing_ok=True)
    return data


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
