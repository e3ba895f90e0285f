"""Checking and keeping uploaded files: a wrong type or size is refused before anything is
written or charged, with a message a person understands."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from arcano_tools import constants as c
from arcano_tools.domain.errors import FileTooLarge, UnsupportedFile
from arcano_tools.domain.tools import FileInput
from arcano_tools.storage import ObjectStorage, check_key
from arcano_tools.storage.local import LocalStorage

_IMAGE_EXT = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
}
_VIDEO_EXT = {"mp4": ("mp4", "video/mp4"), "webm": ("webm", "video/webm")}


@dataclass(frozen=True)
class Upload:
    """A file as received (multipart field or browser upload)."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class CheckedFile:
    field: str
    filename: str
    content: bytes
    ext: str
    content_type: str
    width: int | None = None
    height: int | None = None

    def describe(self, relpath: str) -> dict[str, object]:
        """What the job row keeps about the file."""
        return {
            "path": relpath,
            "name": self.filename,
            "content_type": self.content_type,
            "size": len(self.content),
            "width": self.width,
            "height": self.height,
        }


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def check_file(spec: FileInput, upload: Upload) -> CheckedFile:
    """Validate by content (magic bytes, a real decode), never by the file's name."""
    name = upload.filename or spec.name
    if not upload.content:
        raise UnsupportedFile(f"O arquivo “{name}” está vazio.")
    if spec.kind == "image":
        return _check_image(spec, name, upload.content)
    return _check_video(spec, name, upload.content)


def _check_image(spec: FileInput, name: str, content: bytes) -> CheckedFile:
    if len(content) > c.MAX_IMAGE_BYTES:
        raise FileTooLarge(
            f"A imagem “{name}” tem {_mb(len(content))}; o limite é {_mb(c.MAX_IMAGE_BYTES)}."
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (then raises) for huge pixel counts: that is a size problem
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as img:
                fmt = img.format or ""
                width, height = img.size
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FileTooLarge(
            f"A imagem “{name}” tem pixels demais; o máximo é {c.MAX_IMAGE_SIDE_PX} px "
            "no lado maior."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnsupportedFile(
            f"“{name}” não é uma imagem válida. Envie um arquivo PNG, JPEG ou WEBP."
        ) from None
    if fmt not in c.ALLOWED_IMAGE_FORMATS:
        raise UnsupportedFile(
            f"O formato {fmt or 'desconhecido'} de “{name}” não é aceito. Use PNG, JPEG ou WEBP."
        )
    if max(width, height) > c.MAX_IMAGE_SIDE_PX:
        raise FileTooLarge(
            f"A imagem “{name}” tem {width}×{height} px; o máximo é {c.MAX_IMAGE_SIDE_PX} px "
            "no lado maior."
        )
    ext, ctype = _IMAGE_EXT[fmt]
    return CheckedFile(spec.name, name, content, ext, ctype, width, height)


def video_kind(content: bytes) -> str | None:
    """``mp4`` (MP4/MOV: ``ftyp`` box) or ``webm`` (EBML) by the header, else ``None``."""
    if len(content) >= 12 and content[4:8] == b"ftyp":
        return "mp4"
    if content[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def _check_video(spec: FileInput, name: str, content: bytes) -> CheckedFile:
    if len(content) > c.MAX_UPLOAD_BYTES:
        raise FileTooLarge(
            f"O vídeo “{name}” tem {_mb(len(content))}; o limite é {_mb(c.MAX_UPLOAD_BYTES)}."
        )
    kind = video_kind(content)
    if kind not in c.ALLOWED_VIDEO_KINDS:
        raise UnsupportedFile(f"“{name}” não é um vídeo MP4, MOV ou WEBM válido.")
    ext, ctype = _VIDEO_EXT[kind]
    return CheckedFile(spec.name, name, content, ext, ctype)


#: Table names and job ids (uuids) as path components: no separators, no dots, not empty.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class FileStore:
    """A job's inputs in the storage seam (``uploads/<table>/<job>/<field>.<ext>``): the
    local folder under the data directory by default, Supabase Storage when configured — so
    the process starting a job need not be the one that received its upload."""

    def __init__(self, root: Path, storage: ObjectStorage | None = None) -> None:
        self.root = root
        self.storage: ObjectStorage = storage or LocalStorage(root)

    def _folder(self, table: str, job_id: str) -> str:
        if not _SAFE_NAME.fullmatch(table) or not _SAFE_NAME.fullmatch(job_id):
            raise ValueError("table and job id must be plain names")
        return f"uploads/{table}/{job_id}"

    def save(
        self, table: str, job_id: str, files: list[CheckedFile]
    ) -> dict[str, dict[str, object]]:
        folder = self._folder(table, job_id)
        described: dict[str, dict[str, object]] = {}
        for f in files:
            key = f"{folder}/{f.field}.{f.ext}"
            self.storage.put(key, f.content, f.content_type)
            described[f.field] = f.describe(key)
        return described

    def read(self, relpath: str) -> bytes:
        """The input's bytes by its key (``FileNotFoundError`` once it is gone)."""
        try:
            check_key(relpath)
        except ValueError:
            raise ValueError(f"path outside the data directory: {relpath[:80]!r}") from None
        try:
            return self.storage.read(relpath)
        except ValueError:  # a symlink out of the local folder
            raise ValueError(f"path outside the data directory: {relpath[:80]!r}") from None

    def discard(self, table: str, job_id: str) -> None:
        self.storage.delete_folder(self._folder(table, job_id))
