"""Uploaded files are judged by their content (magic bytes, a real decode) and kept under the
data directory, never outside it."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from arcano_tools import constants as c
from arcano_tools.api.errors import http_status_of
from arcano_tools.domain.errors import FileTooLarge, UnsupportedFile
from arcano_tools.domain.tools import FileInput
from arcano_tools.services.uploads import CheckedFile, FileStore, Upload, check_file

IMAGE = FileInput("image", "image", "Sua foto")
POSE = FileInput("pose_image", "image", "Pose de referência")
VIDEO = FileInput("video", "video", "Seu vídeo")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 90)).save(buf, format=fmt)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_1bit_png(width: int, height: int) -> bytes:
    """A valid black-and-white PNG of any size, a few KB long (rows of zeros compress well)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


# --- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "ext", "content_type"),
    [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"), ("WEBP", "webp", "image/webp")],
)
def test_a_real_image_is_accepted_with_its_type_and_size(
    fmt: str, ext: str, content_type: str
) -> None:
    content = image_bytes(fmt, (64, 48))
    checked = check_file(IMAGE, Upload("minha foto.bin", content))
    assert checked == CheckedFile(
        field="image",
        filename="minha foto.bin",
        content=content,
        ext=ext,
        content_type=content_type,
        width=64,
        height=48,
    )


def test_an_image_keeps_the_field_name_of_its_input() -> None:
    checked = check_file(POSE, Upload("pose.jpg", image_bytes("JPEG")))
    assert checked.field == "pose_image"


def test_a_png_with_alpha_is_accepted() -> None:
    checked = check_file(IMAGE, Upload("a.png", image_bytes("PNG", (10, 20), mode="RGBA")))
    assert (checked.ext, checked.width, checked.height) == ("png", 10, 20)


def test_a_gif_is_refused_as_unsupported_naming_its_format() -> None:
    with pytest.raises(UnsupportedFile, match="GIF") as info:
        check_file(IMAGE, Upload("anim.png", image_bytes("GIF")))
    assert http_status_of(info.value) == 415
    assert "anim.png" in str(info.value)


def test_a_bmp_is_refused_as_unsupported() -> None:
    with pytest.raises(UnsupportedFile, match="BMP"):
        check_file(IMAGE, Upload("x.bmp", image_bytes("BMP")))


def test_text_renamed_to_png_is_refused_as_not_an_image() -> None:
    with pytest.raises(UnsupportedFile, match="não é uma imagem válida"):
        check_file(IMAGE, Upload("foto.png", b"I am a text file, not a picture\n" * 10))


def test_a_truncated_png_is_refused_as_not_an_image() -> None:
    content = image_bytes("PNG", (64, 48))
    with pytest.raises(UnsupportedFile, match="não é uma imagem válida"):
        check_file(IMAGE, Upload("cut.png", content[: len(content) // 2]))


def test_an_empty_file_is_refused_as_empty() -> None:
    with pytest.raises(UnsupportedFile, match="vazio") as info:
        check_file(IMAGE, Upload("vazio.png", b""))
    assert "vazio.png" in str(info.value)


def test_an_empty_file_without_a_name_is_named_by_its_input() -> None:
    with pytest.raises(UnsupportedFile, match="“image”"):
        check_file(IMAGE, Upload("", b""))


def test_an_image_over_the_byte_limit_is_too_large_before_being_decoded() -> None:
    content = PNG_SIGNATURE + bytes(c.MAX_IMAGE_BYTES + 1 - len(PNG_SIGNATURE))
    with pytest.raises(FileTooLarge, match="limite é 20 MB") as info:
        check_file(IMAGE, Upload("huge.png", content))
    assert http_status_of(info.value) == 413


def test_an_image_of_exactly_the_byte_limit_is_not_refused_for_its_size() -> None:
    content = PNG_SIGNATURE + bytes(c.MAX_IMAGE_BYTES - len(PNG_SIGNATURE))
    # not too large: it goes on to be decoded, and zeros are not an image
    with pytest.raises(UnsupportedFile):
        check_file(IMAGE, Upload("edge.png", content))


@pytest.mark.parametrize("size", [(c.MAX_IMAGE_SIDE_PX + 1, 1), (1, c.MAX_IMAGE_SIDE_PX + 1)])
def test_an_image_with_a_side_over_the_pixel_limit_is_too_large(size: tuple[int, int]) -> None:
    with pytest.raises(FileTooLarge, match="4096 px") as info:
        check_file(IMAGE, Upload("wide.png", image_bytes("PNG", size)))
    assert f"{size[0]}×{size[1]} px" in str(info.value)


def test_an_image_with_a_side_of_exactly_the_pixel_limit_is_accepted() -> None:
    checked = check_file(IMAGE, Upload("edge.png", image_bytes("PNG", (c.MAX_IMAGE_SIDE_PX, 1))))
    assert checked.width == c.MAX_IMAGE_SIDE_PX


def test_a_valid_image_far_over_the_pixel_limit_is_too_large_not_invalid() -> None:
    content = blank_1bit_png(13_400, 13_400)  # 179.6 Mpx, ~22 KB
    assert len(content) < c.MAX_IMAGE_BYTES
    with pytest.raises(FileTooLarge, match="4096 px"):
        check_file(IMAGE, Upload("scan.png", content))


# --- videos -----------------------------------------------------------------------------------


@pytest.mark.parametrize("brand", [b"isom", b"mp42", b"qt  "], ids=["isom", "mp42", "mov"])
def test_an_iso_media_file_with_ftyp_at_offset_4_is_an_mp4(brand: bytes) -> None:
    content = b"\x00\x00\x00\x20ftyp" + brand + bytes(64)
    checked = check_file(VIDEO, Upload("clip.mov", content))
    assert (checked.ext, checked.content_type) == ("mp4", "video/mp4")
    assert (checked.field, checked.filename, checked.content) == ("video", "clip.mov", content)
    assert (checked.width, checked.height) == (None, None)


def test_a_file_starting_with_the_ebml_magic_is_a_webm() -> None:
    checked = check_file(VIDEO, Upload("clip.webm", b"\x1a\x45\xdf\xa3" + bytes(64)))
    assert (checked.ext, checked.content_type) == ("webm", "video/webm")


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 4,
        b"RIFF\x00\x00\x00\x00AVI LIST",
        b"ftyp" + bytes(64),
        b"\x00\x00\x00\x20ftyp",
        image_bytes("PNG"),
    ],
    ids=["random", "avi", "ftyp-at-0", "ftyp-too-short", "png"],
)
def test_anything_else_is_refused_as_a_video(content: bytes) -> None:
    with pytest.raises(UnsupportedFile, match="não é um vídeo"):
        check_file(VIDEO, Upload("clip.mp4", content))


def test_an_empty_video_is_refused_as_empty() -> None:
    with pytest.raises(UnsupportedFile, match="vazio"):
        check_file(VIDEO, Upload("clip.mp4", b""))


def test_a_video_over_the_upload_limit_is_too_large() -> None:
    content = b"\x00\x00\x00\x20ftypisom" + bytes(c.MAX_UPLOAD_BYTES)
    with pytest.raises(FileTooLarge, match="limite é 30 MB"):
        check_file(VIDEO, Upload("long.mp4", content))


# --- FileStore --------------------------------------------------------------------------------


def test_saved_files_land_under_uploads_table_job_and_are_described(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    person = check_file(IMAGE, Upload("eu.jpg", image_bytes("JPEG", (30, 40))))
    pose = check_file(POSE, Upload("pose.webp", image_bytes("WEBP", (20, 10))))

    described = store.save("pose_changer_jobs", "job-1", [person, pose])

    assert set(described) == {"image", "pose_image"}
    assert described["image"] == {
        "path": "uploads/pose_changer_jobs/job-1/image.jpg",
        "name": "eu.jpg",
        "content_type": "image/jpeg",
        "size": len(person.content),
        "width": 30,
        "height": 40,
    }
    assert described["pose_image"]["path"] == "uploads/pose_changer_jobs/job-1/pose_image.webp"
    on_disk = tmp_path / "uploads" / "pose_changer_jobs" / "job-1" / "image.jpg"
    assert on_disk.read_bytes() == person.content


def test_a_saved_file_reads_back_by_its_relative_path(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    checked = check_file(IMAGE, Upload("a.png", image_bytes("PNG")))
    path = store.save("upscaler_jobs", "j1", [checked])["image"]["path"]
    assert store.read(str(path)) == checked.content


def test_discard_removes_the_jobs_folder_and_only_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    checked = check_file(IMAGE, Upload("a.png", image_bytes("PNG")))
    store.save("upscaler_jobs", "j1", [checked])
    store.save("upscaler_jobs", "j2", [checked])

    store.discard("upscaler_jobs", "j1")

    assert not (tmp_path / "uploads" / "upscaler_jobs" / "j1").exists()
    assert (tmp_path / "uploads" / "upscaler_jobs" / "j2" / "image.png").exists()


def test_discarding_a_job_without_files_does_nothing(tmp_path: Path) -> None:
    FileStore(tmp_path).discard("upscaler_jobs", "never-saved")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("relpath", ["../x", "../../etc/passwd", "uploads/../../x"])
def test_read_refuses_a_path_that_climbs_out_of_the_root(tmp_path: Path, relpath: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "x").write_bytes(b"secret next to the data dir")
    with pytest.raises(ValueError, match="outside"):
        FileStore(root).read(relpath)


def test_read_refuses_an_absolute_path_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "x"
    outside.write_bytes(b"secret")
    with pytest.raises(ValueError, match="outside"):
        FileStore(root).read(str(outside))


def test_read_refuses_a_symlink_that_points_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "x").write_bytes(b"secret")
    (root / "link").symlink_to(tmp_path / "x")
    with pytest.raises(ValueError, match="outside"):
        FileStore(root).read("link")


def test_read_follows_a_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".data" / "uploads").mkdir(parents=True)
    (tmp_path / ".data" / "uploads" / "f.bin").write_bytes(b"ok")
    assert FileStore(Path(".data")).read("uploads/f.bin") == b"ok"
