"""A demo default never fails open (audit findings 2 and 3): the emulator, generated secrets
and free anonymous credits exist only where someone chose the demo."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from arcano_tools import constants as c
from arcano_tools.config import Settings
from arcano_tools.emulator import create_emulator_app
from arcano_tools.emulator.control import EmulatorControl
from arcano_tools.emulator.guard import EmulatorGuard
from arcano_tools.wiring import UnsafeConfiguration, refuse_unsafe_start
from tests.support.env import settings_env_names

PRODUCTION = {
    "RUNNINGHUB_API_URL": "https://www.runninghub.ai",
    "RUNNINGHUB_API_KEY": "r" * 32,
    "ARCANO_SERVICE_KEY": "svc_" + "s" * 40,
    "ARCANO_JWT_SECRET": "j" * 40,
}
KEY = "k" * 32


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in [*settings_env_names(), "REFLEX_ENV_MODE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCANO_DATA_DIR", str(tmp_path))
    return monkeypatch


def test_a_server_with_production_secrets_but_no_runninghub_url_refuses_to_start(
    env: pytest.MonkeyPatch,
) -> None:
    for name, value in PRODUCTION.items():
        if name != "RUNNINGHUB_API_URL":
            env.setenv(name, value)

    problem = Settings().startup_problem()

    assert problem is not None
    assert "RUNNINGHUB_API_URL" in problem
    assert "ARCANO_DEMO=true" in problem
    assert "\n" not in problem  # one clear line
    with pytest.raises(UnsafeConfiguration, match="refusing to start"):
        refuse_unsafe_start(Settings())


def test_generated_secrets_are_refused_outside_the_demo(env: pytest.MonkeyPatch) -> None:
    env.setenv("RUNNINGHUB_API_URL", "https://www.runninghub.ai")
    env.setenv("RUNNINGHUB_API_KEY", "r" * 32)

    problem = Settings().startup_problem()

    assert problem is not None
    assert "ARCANO_SERVICE_KEY" in problem
    assert "ARCANO_JWT_SECRET" in problem
    assert "RUNNINGHUB_API_URL" not in problem.split(" not set")[0]


def test_a_fully_configured_production_server_may_start(env: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        env.setenv(name, value)
    settings = Settings()
    assert settings.startup_problem() is None
    assert not settings.emulated
    refuse_unsafe_start(settings)  # does not raise


@pytest.mark.parametrize(("name", "value"), [("ARCANO_DEMO", "true"), ("REFLEX_ENV_MODE", "dev")])
def test_the_demo_is_chosen_by_arcano_demo_or_make_runs_dev_mode(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    settings = Settings()
    assert settings.startup_problem() is None
    assert settings.emulated
    assert settings.anonymous_users
    assert settings.starting_credits == c.STARTING_CREDITS


def test_reflex_prod_mode_is_not_the_demo(env: pytest.MonkeyPatch) -> None:
    env.setenv("REFLEX_ENV_MODE", "prod")
    assert Settings().startup_problem() is not None


def test_with_a_real_runninghub_there_are_no_anonymous_users_nor_free_credits(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("ARCANO_DEMO", "true")  # even a demo flag left on does not pay for GPU time
    for name, value in PRODUCTION.items():
        env.setenv(name, value)
    settings = Settings()
    assert not settings.anonymous_users
    assert settings.starting_credits == 0


def test_new_user_grants_are_bounded(env: pytest.MonkeyPatch) -> None:
    env.setenv("ARCANO_NEW_USER_CREDITS", "1000000")
    assert Settings().starting_credits == c.MAX_NEW_USER_CREDITS
    env.setenv("ARCANO_NEW_USER_CREDITS", "20")
    assert Settings().starting_credits == 20


# --- the emulator's guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/webhooks/runninghub/t/j?token=x", True),
        ("http://localhost:3000/webhooks/runninghub", True),
        ("http://[::1]:8000/w", True),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://10.0.0.5:8000/w", False),
        ("https://evil.example/w", False),
        ("file:///etc/passwd", False),
        ("gopher://127.0.0.1:25/", False),
        ("http://127.0.0.1:notaport/w", False),
    ],
)
def test_an_emulator_alone_sends_webhooks_to_loopback_only(url: str, allowed: bool) -> None:
    assert EmulatorGuard().webhook_allowed(url) is allowed


def test_an_embedded_emulator_sends_webhooks_to_its_backends_origin_only() -> None:
    guard = EmulatorGuard(webhook_origin="https://arcano.example")
    assert guard.webhook_allowed("https://arcano.example/webhooks/runninghub/t/j?token=x")
    assert guard.webhook_allowed("https://ARCANO.example:443/webhooks/runninghub")
    assert not guard.webhook_allowed("http://arcano.example/webhooks")  # another scheme
    assert not guard.webhook_allowed("https://arcano.example:8443/webhooks")
    assert not guard.webhook_allowed("http://127.0.0.1:8000/webhooks")


async def test_the_emulator_refuses_a_task_whose_webhook_points_elsewhere(
    tmp_path: Path,
) -> None:
    app = create_emulator_app(tmp_path, EmulatorControl(task_ms=0, webhook="drop"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://emulator.test"
    ) as http:
        answer = await http.post(
            "/task/openapi/ai-app/run",
            json={
                "apiKey": KEY,
                "webappId": c.EMULATOR_APP_UPSCALER,
                "nodeInfoList": [],
                "webhookUrl": "http://169.254.169.254/latest/meta-data",
            },
        )
        stats = (await http.get("/_stats")).json()
    assert answer.json()["code"] != 0
    assert "webhookUrl" in answer.json()["msg"]
    assert stats["tasks"]["created"] == 0


async def test_the_emulators_controls_need_the_key_when_one_is_set(tmp_path: Path) -> None:
    app = create_emulator_app(tmp_path, EmulatorControl(), EmulatorGuard(control_key=KEY))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://emulator.test"
    ) as http:
        refused = [
            await http.post("/_control", json={"outcome": "fail"}),
            await http.get("/_control"),
            await http.get("/_stats"),
            await http.get("/_stats", headers={"Authorization": "Bearer wrong"}),
        ]
        allowed = await http.post(
            "/_control", json={"outcome": "fail"}, headers={"Authorization": f"Bearer {KEY}"}
        )
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert all("service key" in r.json()["error"] for r in refused)
    assert allowed.status_code == 200
    assert allowed.json()["outcome"] == "fail"


@pytest.mark.parametrize("workers", [None, "3"])
def test_the_embedded_emulator_refuses_several_prod_workers(
    env: pytest.MonkeyPatch, workers: str | None
) -> None:
    """Its tasks live in one process's memory: a status call reaching another worker would
    find no task. Reflex's prod mode with Redis starts several workers unless told one."""
    env.setenv("ARCANO_DEMO", "true")
    env.setenv("REFLEX_ENV_MODE", "prod")
    env.setenv("REFLEX_REDIS_URL", "redis://127.0.0.1:6379/0")
    if workers is not None:
        env.setenv("GRANIAN_WORKERS", workers)

    problem = Settings().startup_problem()

    assert problem is not None
    assert "GRANIAN_WORKERS=1" in problem
    assert "RUNNINGHUB_API_URL" in problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    "extra",
    [
        {"GRANIAN_WORKERS": "1"},  # one worker: its emulator sees every call
        {"REFLEX_ENV_MODE": "dev"},  # make run: one process
        {"RUNNINGHUB_API_URL": "http://127.0.0.1:8100"},  # one emulator for every worker
    ],
    ids=["one-worker", "dev", "emulator-alone"],
)
def test_the_demo_with_one_emulator_for_every_worker_may_start(
    env: pytest.MonkeyPatch, extra: dict[str, str]
) -> None:
    env.setenv("ARCANO_DEMO", "true")
    env.setenv("REFLEX_ENV_MODE", "prod")
    env.setenv("REFLEX_REDIS_URL", "redis://127.0.0.1:6379/0")
    for name, value in extra.items():
        env.setenv(name, value)
    assert Settings().startup_problem() is None


def test_with_supabase_auth_browsers_sign_in_instead_of_being_anonymous(
    env: pytest.MonkeyPatch,
) -> None:
    """Sign-in replaces anonymous users; the demo's emulator still grants its test credits,
    a real RunningHub grants none unless ARCANO_NEW_USER_CREDITS says so."""
    env.setenv("ARCANO_DEMO", "true")
    env.setenv("SUPABASE_URL", "https://abc.supabase.co/")
    env.setenv("SUPABASE_ANON_KEY", "anon")
    demo = Settings()
    assert demo.supabase_auth
    assert demo.supabase_issuer == "https://abc.supabase.co/auth/v1"
    assert not demo.anonymous_users
    assert demo.starting_credits == c.STARTING_CREDITS
    for name, value in PRODUCTION.items():
        env.setenv(name, value)
    env.delenv("ARCANO_DEMO")
    production = Settings()
    assert production.supabase_auth
    assert not production.anonymous_users
    assert production.starting_credits == 0
    env.delenv("SUPABASE_ANON_KEY")
    assert not Settings().supabase_auth  # the URL alone (Storage) offers no sign-in
