"""The readable name a person gets for a result (its signed address: test_downloads_and_output_checks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from arcano_tools.domain.status import JobStatus
from arcano_tools.web.downloads import download_name
from tests.support.records import job_record

T0 = datetime(2026, 11, 29, 14, 32, 7, tzinfo=UTC)
RH_URL = "https://rh-images.xiaoyaoyou.com/abc/output/4268416926968341620_c2b6c428.png"


def done(**fields: object) -> object:
    return job_record(T0, status=JobStatus.COMPLETED, completed_at=T0, **fields)


def test_the_name_says_tool_scale_and_date_with_the_results_extension() -> None:
    job = done(inputs={"scale": 4, "image": {"path": "x"}}, output_url=RH_URL)
    assert download_name(job) == "arcano-upscaler-4x-2026-11-29-1432.png"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("table", "url", "inputs", "name"),
    [
        (
            "pose_changer_jobs",
            "https://h/o/1.JPEG?sig=1",
            {},
            "arcano-pose-changer-2026-11-29-1432.jpg",
        ),
        ("veste_ai_jobs", "https://h/o/1.webp", {}, "arcano-veste-ai-2026-11-29-1432.webp"),
        (
            "video_upscaler_jobs",
            "https://h/o/1",
            {"scale": 2},
            "arcano-video-upscaler-2x-2026-11-29-1432.mp4",
        ),
        (
            "upscaler_jobs",
            "https://h/o/1.exe",
            {"scale": True},
            "arcano-upscaler-2026-11-29-1432.png",
        ),
    ],
)
def test_odd_urls_and_params_still_give_a_safe_readable_name(
    table: str, url: str, inputs: dict[str, object], name: str
) -> None:
    job = done(table=table, output_url=url, inputs=inputs)
    assert download_name(job) == name  # type: ignore[arg-type]


def test_a_job_without_a_finish_time_is_named_by_its_creation() -> None:
    job = job_record(T0, status=JobStatus.RUNNING, output_url=None)
    assert download_name(job).startswith("arcano-upscaler-2026-11-29-1432")


async def test_the_size_is_asked_only_of_a_host_trusted_for_outputs() -> None:
    """A HEAD goes only to an output host (the emulator's HEAD is checked in the browser
    tests); any other address is not called at all."""
    from arcano_tools.domain.urls import OutputHosts
    from arcano_tools.web.result_size import output_bytes

    hosts = OutputHosts.of(["rh-images.xiaoyaoyou.com"])
    assert await output_bytes("http://169.254.169.254/latest/meta-data", hosts) is None
    assert await output_bytes("file:///etc/passwd", hosts) is None


def test_a_stored_input_is_described_like_an_upload() -> None:
    from arcano_tools.web.texts import stored_summary

    image = {
        "path": "uploads/t/j/image.png",
        "name": "a.png",
        "size": 2048,
        "width": 320,
        "height": 240,
    }
    assert stored_summary(image) == "320×240 px · 2 KB"
    video = {"path": "p", "name": "praia.mov", "size": 3 * 1024 * 1024, "width": None}
    assert stored_summary(video) == "praia.mov · 3,0 MB"
    assert stored_summary({"path": "p"}) == "arquivo"
