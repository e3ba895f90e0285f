"""How an uploaded file becomes a stored input: its extension, its name, an atomic write.

Why named by content: the same bytes uploaded twice are one file, and a name the emulator made
itself is the only kind :meth:`EmulatorRuntime.resolve_upload` accepts back in ``nodeInfoList``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from arcano_tools.emulator.runtime import UPLOAD_HASH_CHARS

#: An extension taken from the client's filename as is; anything else is sniffed from the bytes.
EXTENSION = re.compile(r"^[a-z0-9]{1,5}$")
#: Enough leading bytes to recognise every format :func:`sniff_extension` knows (WebP: 12).
SNIFF_BYTES = 16
#: What a file of no recognised format is stored as.
UNKNOWN_EXTENSION = "bin"


def stored_name(filename: str, data: bytes) -> str:
    """``<sha256 prefix>.<ext>``: the extension of ``filename`` if plausible, else sniffed."""
    ext = Path(filename).suffix.lower().lstrip(".")
    if ext == "jpeg":
        ext = "jpg"
    if not EXTENSION.match(ext):
        ext = sniff_extension(data[:SNIFF_BYTES])
    return f"{hashlib.sha256(data).hexdigest()[:UPLOAD_HASH_CHARS]}.{ext}"


def sniff_extension(head: bytes) -> str:
    """The extension of the image and video formats the emulated apps take, by magic number."""
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return UNKNOWN_EXTENSION


def store_upload(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` unless already there, through a ``.part`` file and a rename so
    a concurrent reader never sees half a file."""
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
