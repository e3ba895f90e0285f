"""Results that last, end to end on real servers: our API (``serve-api``) on SQLite with the
copy switched on, and the RunningHub emulator as a separate process whose output files can be
dropped, delayed or broken (its ``files`` controls).

* A completed job's result still downloads, with a readable file name, after the emulator
  deleted its original file.
* A failed copy is retried and then falls back to RunningHub's URL, kept for ``/admin``.
* A backend killed mid-copy: the restarted one resumes the copy once its lease has passed.
* On Supabase Storage (the stand-in speaking Storage's wire format, its own process), inputs
  and results live in the bucket, not on a disk; results and downloads are redirects to
  short-lived signed URLs.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from arcano_tools.domain.records import utcnow
from arcano_tools.services.downloads import sign_download
from arcano_tools.storage.supabase import SupabaseStorage
from arcano_tools.tls import client_tls
from tests.support.fixtures import EmulatorControl
from tests.support.images import png_bytes
from tests.support.processes import ServerProcess, free_port, start_process
from tests.support.servers import (
    RH_API_KEY,
    SERVICE_KEY,
    Backend,
    get_job,
    start_backend,
    submit_upscale,
    wait_for,
    wait_terminal,
)
from tests.support.supabase_storage_server import SERVICE_ROLE_KEY

#: The copier's times shrunk (production: 40 s doubling, a 3-minute lease).
KEEP = {
    "ARCANO_KEEP_RESULTS": "true",
    "ARCANO_OUTPUT_COPY_RETRY_BASE_MS": "100",
    "ARCANO_OUTPUT_COPY_LEASE_MS": "1500",
}
WEBHOOK_SECRET = ("webhook:" + SERVICE_KEY).encode()
FINISH_PATH = "/functions/v1/runninghub-queue-manager/finish"
#: How long the emulator holds an output file back while a backend is killed mid-copy.
COPY_HANG_MS = 4000


@pytest.fixture(scope="module")
def keeper(emulator: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    b = start_backend(emulator.url, tmp_path_factory.mktemp("keeper"), extra_env=KEEP)
    yield b
    b.api.stop()


def submit(client: httpx.Client, backend: Backend, user: str) -> str:
    r = submit_upscale(client, backend, user, scale=2)
    assert r.status_code == 201, r.text
    return str(r.json()["jobId"])


def copy_row(backend: Backend, job_id: str) -> tuple[str | None, str | None, int, str | None]:
    ((upstream, state, tries, key),) = backend.rows(
        "SELECT upstream_output_url, output_copy, output_copy_tries, output_key "
        "FROM upscaler_jobs WHERE id = :id",
        id=job_id,
    )
    return upstream, state, tries, key


def test_a_completed_jobs_result_still_downloads_after_the_emulator_deleted_its_file(
    keeper: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    job_id = submit(client, keeper, user)
    job = wait_terminal(client, keeper, user, job_id)
    assert job["status"] == "completed"
    assert job["saving"] is False
    assert job["outputUrl"] == f"{keeper.url}/files/results/upscaler_jobs/{job_id}.png"
    upstream, state, tries, key = copy_row(keeper, job_id)
    assert upstream is not None
    assert upstream.startswith(keeper.emulator_url + "/files/")
    assert (state, tries, key) == ("saved", 1, f"results/upscaler_jobs/{job_id}.png")

    emu.set(drop_outputs=True)  # RunningHub's CDN forgot it, as it does after a day
    assert client.get(upstream).status_code == 404

    r = client.get(
        f"{keeper.url}/api/jobs/upscaler_jobs/{job_id}/download", headers=keeper.user_headers(user)
    )
    assert r.status_code == 200, r.text
    day = utcnow().date().isoformat()
    assert re.fullmatch(
        rf'attachment; filename="arcano-upscaler-2x-{day}-\d{{4}}\.png"',
        r.headers["content-disposition"],
    ), r.headers["content-disposition"]
    assert r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).format == "PNG"
    assert r.content == (keeper.data_dir / key).read_bytes()  # type: ignore[operator]
    shown = client.get(job["outputUrl"])  # what the page's <img> loads, no token
    assert shown.status_code == 200
    assert shown.content == r.content


def test_a_signed_link_downloads_without_the_token_until_it_expires(
    keeper: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    job_id = submit(client, keeper, user)
    assert wait_terminal(client, keeper, user, job_id)["status"] == "completed"
    path = f"{keeper.url}/api/jobs/upscaler_jobs/{job_id}/download"
    expires = int(time.time()) + 60
    sig = sign_download(WEBHOOK_SECRET, "upscaler_jobs", job_id, expires)

    ok = client.get(path, params={"expires": expires, "sig": sig})
    assert ok.status_code == 200
    assert ok.headers["content-disposition"].startswith('attachment; filename="arcano-upscaler-')

    forged = client.get(path, params={"expires": expires + 1, "sig": sig})
    past = int(time.time()) - 1
    expired = client.get(
        path,
        params={
            "expires": past,
            "sig": sign_download(WEBHOOK_SECRET, "upscaler_jobs", job_id, past),
        },
    )
    assert (forged.status_code, expired.status_code) == (401, 401)
    stranger = client.get(path, headers=keeper.user_headers(user + "-other"))
    assert stranger.status_code == 404


def test_a_failing_copy_is_retried_then_completes_with_runninghubs_url(
    keeper: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(files="error")
    job_id = submit(client, keeper, user)
    job = wait_terminal(client, keeper, user, job_id, timeout=30)

    upstream, state, tries, key = copy_row(keeper, job_id)
    assert job["status"] == "completed"
    assert job["outputUrl"] == upstream  # never lost while the copy was failing
    assert (state, tries, key) == ("failed", 5, None)
    assert emu.stats()["calls"]["files"] >= 5  # type: ignore[index]
    ((charges,),) = keeper.rows(
        "SELECT count(*) FROM credit_ledger WHERE job_id = :id AND kind = 'charge'", id=job_id
    )
    ((refunds,),) = keeper.rows(
        "SELECT count(*) FROM credit_ledger WHERE job_id = :id AND kind = 'refund'", id=job_id
    )
    assert (charges, refunds) == (1, 0)


def test_a_service_finish_as_completed_copies_the_result_first(
    keeper: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    """``/finish`` is a success path too: RunningHub's URL is kept, the result copied, and the
    job completed once, as the service."""
    emu.set(webhook="drop")
    job_id = submit(client, keeper, user)
    task_id = wait_for(
        lambda: get_job(client, keeper, user, job_id)["taskId"], timeout=15, what="the task"
    )
    wait_for(lambda: emu.stats()["tasks"]["succeeded"] >= 1, what="the task to end upstream")  # type: ignore[index]
    outputs = client.post(
        keeper.emulator_url + "/task/openapi/outputs",
        json={"apiKey": RH_API_KEY, "taskId": task_id},
    ).json()
    upstream = outputs["data"][0]["fileUrl"]
    body = {"table": "upscaler_jobs", "jobId": job_id, "status": "completed", "outputUrl": upstream}

    first = client.post(keeper.url + FINISH_PATH, headers=keeper.service_headers, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["saving"] is True
    assert first.json()["changed"] is False
    assert first.json()["job"]["status"] in ("running", "completed")  # the copy may be done
    job = wait_terminal(client, keeper, user, job_id)

    assert job["status"] == "completed"
    assert job["finishedBy"] == "service"
    assert job["outputUrl"] == f"{keeper.url}/files/results/upscaler_jobs/{job_id}.png"
    assert copy_row(keeper, job_id)[0] == upstream
    again = client.post(keeper.url + FINISH_PATH, headers=keeper.service_headers, json=body)
    assert again.json()["changed"] is False
    assert "saving" not in again.json()
    assert again.json()["job"]["outputUrl"] == job["outputUrl"]  # a terminal job never changes


BUCKET = "arcano-results"


@pytest.fixture(scope="module")
def supabase() -> Iterator[ServerProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:  # the gateway answers 401 without an API key: it is up
            return (
                httpx.get(url + "/storage/v1/bucket/x", timeout=2, verify=client_tls()).status_code
                == 401
            )
        except httpx.TransportError:
            return False

    server = start_process(
        "supabase-storage",
        [sys.executable, "-m", "tests.support.supabase_storage_server", "--port", str(port)],
        ready=ready,
        url=url,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def on_supabase(
    emulator: ServerProcess, supabase: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    env = {
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
        "SUPABASE_STORAGE_BUCKET": BUCKET,
        "ARCANO_KEEP_RESULTS": "true",
    }
    b = start_backend(emulator.url, tmp_path_factory.mktemp("on-supabase"), extra_env=env)
    yield b
    b.api.stop()


def test_inputs_and_results_live_in_the_bucket_and_download_by_signed_url(
    on_supabase: Backend,
    supabase: ServerProcess,
    client: httpx.Client,
    emu: EmulatorControl,
    user: str,
) -> None:
    image = png_bytes((40, 30))
    r = submit_upscale(client, on_supabase, user, image=image)
    assert r.status_code == 201, r.text
    job_id = r.json()["jobId"]
    job = wait_terminal(client, on_supabase, user, job_id)
    assert job["status"] == "completed"

    bucket = SupabaseStorage(supabase.url, SERVICE_ROLE_KEY, BUCKET)
    try:
        assert bucket.read(f"uploads/upscaler_jobs/{job_id}/image.png") == image
        kept = bucket.read(f"results/upscaler_jobs/{job_id}.png")
    finally:
        bucket.close()
    assert Image.open(io.BytesIO(kept)).size == (80, 60)  # the emulator's ×2
    on_disk = {p.name for p in on_supabase.data_dir.iterdir()}
    assert not on_disk & {"uploads", "results"}  # nothing shared on a disk

    emu.set(drop_outputs=True)
    shown = client.get(job["outputUrl"])  # the page's <img>: a redirect to a signed URL
    assert shown.status_code == 302
    assert shown.headers["location"].startswith(supabase.url + "/storage/v1/object/sign/")
    assert client.get(shown.headers["location"]).content == kept
    download = client.get(
        f"{on_supabase.url}/api/jobs/upscaler_jobs/{job_id}/download",
        headers=on_supabase.user_headers(user),
    )
    assert download.status_code == 302
    got = client.get(download.headers["location"])
    assert got.status_code == 200
    assert got.content == kept
    assert got.headers["content-disposition"].startswith('attachment; filename="arcano-upscaler-')
    assert re.fullmatch(
        r'attachment; filename="arcano-upscaler-2x-\d{4}-\d{2}-\d{2}-\d{4}\.png"',
        got.headers["content-disposition"],
    ), got.headers["content-disposition"]


def test_a_backend_killed_mid_copy_resumes_it_after_a_restart(
    keeper: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    """Last in the module: it kills the module's backend (a crash) and restarts it."""
    emu.set(files_delay_ms=COPY_HANG_MS)  # the output is slow: the copy is in flight
    job_id = submit(client, keeper, user)
    wait_for(
        lambda: get_job(client, keeper, user, job_id)["saving"],
        timeout=15,
        what="the copy to begin",
    )
    os.killpg(keeper.api.process.pid, signal.SIGKILL)  # a crash, mid-copy
    keeper.api.process.wait(timeout=10)
    assert copy_row(keeper, job_id)[1] == "saving"

    emu.set(files_delay_ms=0)
    port = int(keeper.url.rsplit(":", 1)[-1])
    restarted = start_backend(keeper.emulator_url, keeper.data_dir, extra_env=KEEP, port=port)
    try:
        job = wait_terminal(client, restarted, user, job_id, timeout=20)
        assert job["status"] == "completed"
        assert job["finishedBy"] == "webhook"  # the path that reported the success
        assert job["outputUrl"] == f"{restarted.url}/files/results/upscaler_jobs/{job_id}.png"
        assert copy_row(restarted, job_id)[1] == "saved"
        assert (restarted.data_dir / f"results/upscaler_jobs/{job_id}.png").is_file()
    finally:
        restarted.api.stop()
