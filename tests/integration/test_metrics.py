"""``/metrics``: Prometheus text that parses, with counters that match what happened."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arcano_tools.config import Settings
from arcano_tools.wiring import Services
from bench.staging import stage_running_jobs
from tests.support.env import settings_env_names
from tests.support.fixtures import EmulatorControl
from tests.support.servers import Backend, submit_upscale, wait_for, wait_synced, wait_terminal


def scrape(
    client: httpx.Client, backend: Backend
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get(backend.url + "/metrics", headers=backend.service_headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_an_operator(backend: Backend, client: httpx.Client, user: str) -> None:
    assert client.get(backend.url + "/metrics").status_code == 401
    assert (
        client.get(backend.url + "/metrics", headers=backend.user_headers(user)).status_code == 401
    )


def test_counters_follow_what_happened(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    before = scrape(client, backend)
    # one job by webhook, one recovered by the sync after a lost webhook, one forged webhook
    ok = submit_upscale(client, backend, user).json()["jobId"]
    assert wait_terminal(client, backend, user, ok)["status"] == "completed"
    emu.set(webhook="drop")
    lost = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["tasks"]["succeeded"] >= 1, what="the lost-webhook task")

    wait_synced(client, backend, user, lost)
    forged = client.post(
        f"{backend.url}/webhooks/runninghub/upscaler_jobs/{lost}?token=bad", json={}
    )
    assert forged.status_code == 401

    after = scrape(client, backend)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    finished = "arcano_jobs_finished_total"
    assert delta(finished, table="upscaler_jobs", status="completed", finished_by="webhook") == 1
    assert delta(finished, table="upscaler_jobs", status="completed", finished_by="watchdog") == 1
    assert delta("arcano_webhooks_total", outcome="accepted") == 1
    assert delta("arcano_webhooks_total", outcome="rejected") == 1
    assert delta("arcano_sync_calls_total", caller="watchdog", result="upstream") >= 1
    assert delta("arcano_upstream_calls_total", endpoint="run", code="0") == 2
    assert delta("arcano_upstream_calls_total", endpoint="outputs", code="0") == 1
    assert delta("arcano_recovery_seconds_count") == 1
    assert value(after, "arcano_active_jobs") == 0
    assert value(after, "arcano_oldest_active_job_age_seconds") == 0


#: What the gauges could count before: they read the active jobs themselves, 10,000 at most.
OLD_READ_CAP = 10_000


async def test_the_active_gauges_count_every_active_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``arcano_active_jobs`` said 10,000 however many more were active: the scrape read up
    to 10,000 jobs on the event loop (330 ms at 10,000 here, every page of that worker waiting).
    The database counts them now, on a real SQLite file."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCANO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCANO_DEMO", "true")
    services = Services(Settings())
    await services.store.migrate()
    started_ago = timedelta(minutes=3)
    stage_running_jobs("", tmp_path, OLD_READ_CAP + 1, started_ago=started_ago)

    samples = {
        s.name: s.value
        for family in text_string_to_metric_families((await services.render_metrics()).decode())
        for s in family.samples
    }
    await services.store.close()

    assert samples["arcano_active_jobs"] == OLD_READ_CAP + 1
    assert samples["arcano_oldest_active_job_age_seconds"] >= started_ago.total_seconds()
