"""Pure parts of results that last: the download's file name and signed links, and what a
result must be before we keep it (real Pillow decodes, real video headers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus
from arcano_tools.services.downloads import download_link_ok, download_name, sign_download
from arcano_tools.services.output_verify import OutputLimits, OutputRefused, verify_output
from tests.support.images import png_bytes

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
HHMM = "1500"  # NOW as the download name writes it
SECRET = b"download-test-secret"
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32


def job(table: str = "upscaler_jobs", **fields: object) -> Job:
    base: dict[str, object] = {
        "id": "8d5c0a3e-0000-4000-8000-000000000001",
        "table": table,
        "user_id": "u1",
        "status": JobStatus.COMPLETED,
        "cost": 5,
        "inputs": {"scale": 4},
        "created_at": NOW - timedelta(days=3),
        "updated_at": NOW,
        "completed_at": NOW,
    }
    base.update(fields)
    return Job(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("the_job", "name"),
    [
        (
            job(output_key="results/upscaler_jobs/x.png"),
            f"arcano-upscaler-4x-2026-11-29-{HHMM}.png",
        ),
        (
            job(
                "pose_changer_jobs",
                inputs={},
                output_url="https://rh-images.xiaoyaoyou.com/a/b.jpg",
            ),
            f"arcano-pose-changer-2026-11-29-{HHMM}.jpg",
        ),
        (
            job("video_upscaler_jobs", inputs={"scale": 2}, output_url="https://h/p?sig=1"),
            f"arcano-video-upscaler-2x-2026-11-29-{HHMM}.mp4",
        ),
    ],
)
def test_the_download_name_says_tool_date_and_scale(the_job: Job, name: str) -> None:
    assert download_name(the_job) == name


def test_a_signed_link_is_for_one_job_and_until_it_expires() -> None:
    expires = int((NOW + timedelta(minutes=15)).timestamp())
    sig = sign_download(SECRET, "upscaler_jobs", "j1", expires)
    assert download_link_ok(SECRET, "upscaler_jobs", "j1", str(expires), sig, NOW)
    assert not download_link_ok(SECRET, "upscaler_jobs", "j2", str(expires), sig, NOW)
    assert not download_link_ok(SECRET, "upscaler_jobs", "j1", str(expires + 1), sig, NOW)
    assert not download_link_ok(b"other", "upscaler_jobs", "j1", str(expires), sig, NOW)
    later = NOW + timedelta(minutes=16)
    assert not download_link_ok(SECRET, "upscaler_jobs", "j1", str(expires), sig, later)
    for bad in ("", "-1", "１２", "12a"):
        assert not download_link_ok(SECRET, "upscaler_jobs", "j1", bad, sig, NOW)


def test_a_real_image_and_a_video_header_are_kept_with_their_own_type() -> None:
    png = verify_output(png_bytes((8, 8)), "image/png; charset=binary", OutputLimits())
    assert (png.ext, png.content_type) == ("png", "image/png")
    video = verify_output(MP4_HEAD, "video/mp4", OutputLimits())
    assert (video.ext, video.content_type) == ("mp4", "video/mp4")


@pytest.mark.parametrize(
    ("content", "content_type", "limits", "why"),
    [
        (b"<html>denied</html>", "text/html", OutputLimits(), "neither an image nor a video"),
        (png_bytes((8, 8)), None, OutputLimits(), "missing"),
        (b"\x89PNG\r\n\x1a\nbroken", "image/png", OutputLimits(), "does not decode"),
        (b"GIF89a" + b"\x00" * 20, "image/gif", OutputLimits(), "does not decode"),
        (png_bytes((8, 8)), "image/png", OutputLimits(image_bytes=10), "exceeds 10"),
        (b"plain bytes, no header", "video/mp4", OutputLimits(), "not an MP4/MOV or WEBM"),
        (MP4_HEAD, "video/mp4", OutputLimits(video_bytes=8), "exceeds 8"),
        (b"", "image/png", OutputLimits(), "empty"),
    ],
)
def test_what_is_not_the_result_it_claims_is_refused(
    content: bytes, content_type: str | None, limits: OutputLimits, why: str
) -> None:
    with pytest.raises(OutputRefused, match=why):
        verify_output(content, content_type, limits)
