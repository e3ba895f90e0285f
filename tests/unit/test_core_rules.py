"""Small rules of the core: tokens, file checks, tool configuration, webhook bodies, settings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from arcano_tools import constants as c
from arcano_tools.config import Settings
from arcano_tools.core.auth import authenticate, issue_user_token, verify_user_token
from arcano_tools.core.errors import FileTooLarge, UnsupportedFile
from arcano_tools.core.queue_manager import webhook_token, webhook_token_ok
from arcano_tools.core.tools import FileInput, ToolRegistry
from arcano_tools.core.uploads import FileStore, Upload, check_file
from arcano_tools.core.webhooks import MalformedWebhook, parse_webhook
from arcano_tools.web.texts import duration_text, rejected_message

SECRET = "s" * 48
IMAGE = FileInput("image", "image", "Foto")
VIDEO = FileInput("video", "video", "Vídeo")


def image_bytes(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


# --- auth ---------------------------------------------------------------------------------------


def test_user_tokens_round_trip_and_forgeries_fail() -> None:
    token = issue_user_token(SECRET, "alice")
    assert verify_user_token(SECRET, token) == "alice"
    assert verify_user_token("x" * 48, token) is None
    assert verify_user_token(SECRET, issue_user_token(SECRET, "alice", ttl_s=-5)) is None
    assert verify_user_token(SECRET, "not.a.jwt") is None


def test_authenticate_tells_the_service_from_users_and_refuses_the_rest() -> None:
    token = issue_user_token(SECRET, "bob")
    service = authenticate("Bearer svc-key", service_key="svc-key", jwt_secret=SECRET)
    user = authenticate(f"Bearer {token}", service_key="svc-key", jwt_secret=SECRET)
    assert service is not None
    assert service.is_service
    assert service.may_access("anyone")
    assert user is not None
    assert user.user_id == "bob"
    assert user.may_access("bob")
    assert not user.may_access("carol")
    for header in (None, "", "Bearer ", "Basic abc", f"Token {token}"):
        assert authenticate(header, service_key="svc-key", jwt_secret=SECRET) is None


def test_webhook_tokens_are_per_job_and_per_table() -> None:
    key = b"webhook:k"
    t = webhook_token(key, "upscaler_jobs", "j1")
    assert len(t) == c.WEBHOOK_TOKEN_HEX_CHARS
    assert t == webhook_token(key, "upscaler_jobs", "j1")
    assert t != webhook_token(key, "upscaler_jobs", "j2")
    assert t != webhook_token(key, "veste_ai_jobs", "j1")
    assert webhook_token_ok(key, "upscaler_jobs", "j1", t)
    for bad in (None, "", t[:-1], "0" * 32):
        assert not webhook_token_ok(key, "upscaler_jobs", "j1", bad)


# --- uploads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_real_images_are_accepted_with_their_size(fmt: str) -> None:
    checked = check_file(IMAGE, Upload("x.bin", image_bytes(fmt)))
    assert (checked.width, checked.height) == (40, 30)


def test_files_are_judged_by_content_not_by_name() -> None:
    with pytest.raises(UnsupportedFile, match="não é uma imagem válida"):
        check_file(IMAGE, Upload("foto.png", b"hello, I am text"))
    with pytest.raises(UnsupportedFile, match="GIF"):
        check_file(IMAGE, Upload("anim.png", image_bytes("GIF")))
    with pytest.raises(UnsupportedFile, match="vazio"):
        check_file(IMAGE, Upload("empty.png", b""))


def test_size_limits_are_clear_errors() -> None:
    with pytest.raises(FileTooLarge, match="limite"):
        check_file(IMAGE, Upload("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * c.MAX_IMAGE_BYTES))
    with pytest.raises(FileTooLarge, match="px"):
        check_file(IMAGE, Upload("wide.png", image_bytes("PNG", (c.MAX_IMAGE_SIDE_PX + 1, 2))))


def test_videos_are_recognised_by_their_magic_bytes() -> None:
    assert check_file(VIDEO, Upload("v", b"\0\0\0\x18ftypisom" + b"\0" * 8)).ext == "mp4"
    assert check_file(VIDEO, Upload("v", b"\x1a\x45\xdf\xa3" + b"\0" * 8)).ext == "webm"
    with pytest.raises(UnsupportedFile):
        check_file(VIDEO, Upload("v.mp4", b"RIFF....AVI "))


def test_file_store_keeps_files_inside_its_root(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    described = store.save(
        "upscaler_jobs", "j1", [check_file(IMAGE, Upload("a.png", image_bytes("PNG")))]
    )
    path = str(described["image"]["path"])
    assert store.read(path)[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        store.read("../../etc/passwd")
    store.discard("upscaler_jobs", "j1")
    assert not (tmp_path / "uploads" / "upscaler_jobs" / "j1").exists()


# --- tools -----------------------------------------------------------------------------------


def test_default_tools_and_their_tables() -> None:
    registry = ToolRegistry.from_config("")
    assert registry.tables == (
        "upscaler_jobs",
        "pose_changer_jobs",
        "veste_ai_jobs",
        "video_upscaler_jobs",
    )
    assert registry.by_name("veste_ai").files[1].name == "garment_image"  # type: ignore[union-attr]


def test_tools_json_overrides_app_id_and_nodes() -> None:
    registry = ToolRegistry.from_config(
        json.dumps({"upscaler": {"app_id": "42", "nodes": {"image": ["12", "image"]}}})
    )
    tool = registry.by_name("upscaler")
    assert tool is not None
    assert tool.app_id == "42"
    assert tool.nodes["image"] == ("12", "image")
    assert tool.nodes["scale"] == (c.NODE_SCALE, "value")
    for bad in ("[]", '{"upscaler": {"nodes": {"nope": ["1", "x"]}}}', "{not json"):
        with pytest.raises(ValueError):
            ToolRegistry.from_config(bad)


# --- webhook bodies ----------------------------------------------------------------------------


def test_runninghubs_documented_webhook_body_parses() -> None:
    body = {
        "event": "TASK_END",
        "taskId": "1904163390028185602",
        "eventData": json.dumps(
            {"code": 0, "msg": "success", "data": [{"fileUrl": "https://x/y.png"}]}
        ),
    }
    event = parse_webhook(json.dumps(body).encode())
    assert event.task_id == "1904163390028185602"
    assert event.envelope["data"][0]["fileUrl"] == "https://x/y.png"
    as_object = parse_webhook(
        json.dumps({**body, "taskId": 7, "eventData": {"code": 805}}).encode()
    )
    assert as_object.task_id == "7"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"eventData": "{}"}',
        b'{"taskId": "1", "eventData": "{oops"}',
        b'{"taskId": "1"}',
    ],
)
def test_malformed_webhook_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        parse_webhook(raw)


# --- settings and texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [(720_000, "(12 minutos)"), (60_000, "(1 minuto)"), (4_000, "(4 segundos)")],
)
def test_the_timeout_message_follows_the_setting(ms: int, text: str, tmp_path: Path) -> None:
    settings = Settings(ARCANO_DATA_DIR=tmp_path, WATCHDOG_MAX_TIMEOUT_MS=ms)  # type: ignore[call-arg]
    assert settings.timeout_message == f"Timeout: processamento excedeu o tempo limite {text}"


def test_database_urls_are_mapped_to_async_drivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCANO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/app")
    assert Settings().sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/app"
    monkeypatch.delenv("DATABASE_URL")
    assert Settings().sqlalchemy_url.startswith("sqlite+aiosqlite:///")


def test_the_plans_flag_turns_the_server_watchdog_off_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARCANO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WATCHDOG_ENABLED", "false")
    assert not Settings().server_watchdog_active
    monkeypatch.setenv("WATCHDOG_ENABLED", "true")
    assert Settings().server_watchdog_active
    monkeypatch.setenv("SERVER_WATCHDOG_ENABLED", "false")
    assert not Settings().server_watchdog_active


def test_generated_secrets_are_stable_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCANO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ARCANO_SERVICE_KEY", raising=False)
    first, second = Settings(), Settings()
    assert first.effective_service_key == second.effective_service_key
    assert len(first.effective_runninghub_api_key) == 32
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "j" * 40)
    assert Settings().effective_jwt_secret == "j" * 40


def test_human_texts() -> None:
    assert duration_text(40) == "40 s"
    assert duration_text(75) == "1 min 15 s"
    assert duration_text(120) == "2 min"
    assert "grande demais" in rejected_message([[{"code": "file-too-large"}]])
    assert "não suportado" in rejected_message([[{"code": "file-invalid-type"}]])
