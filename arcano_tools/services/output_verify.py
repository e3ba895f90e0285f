"""Checking a result before it becomes ours: what RunningHub's CDN answered must be the image
or video it claims to be, and not too large — a page and a download will serve it from our
storage under our name, so a wrong body is refused (and the copy retried), never stored."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from arcano_tools.services.uploads import video_kind

#: A result is at most this large: an upscaled image ×4 is tens of MB, a video more.
MAX_OUTPUT_IMAGE_BYTES = 100 * 1024 * 1024
MAX_OUTPUT_VIDEO_BYTES = 500 * 1024 * 1024
#: Image formats a result may have: (extension, content type we store it with).
OUTPUT_IMAGE_FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
}
OUTPUT_VIDEO_KINDS = {"mp4": ("mp4", "video/mp4"), "webm": ("webm", "video/webm")}


class OutputRefused(Exception):
    """The output is not a result we keep (the message says why; it goes to ``/admin``)."""


@dataclass(frozen=True)
class VerifiedOutput:
    content: bytes
    ext: str
    content_type: str


@dataclass(frozen=True)
class OutputLimits:
    image_bytes: int = MAX_OUTPUT_IMAGE_BYTES
    video_bytes: int = MAX_OUTPUT_VIDEO_BYTES

    @property
    def largest(self) -> int:
        return max(self.image_bytes, self.video_bytes)


def media_type(header: str | None) -> str:
    """``image/png`` of ``image/png; charset=binary`` (lower case, no parameters)."""
    return (header or "").split(";", 1)[0].strip().lower()


def verify_output(content: bytes, content_type: str | None, limits: OutputLimits) -> VerifiedOutput:
    """The output as we will store it, or :class:`OutputRefused`: an ``image/*`` answer must
    decode with Pillow as PNG, JPEG or WEBP; a ``video/*`` one must start like MP4/MOV or
    WEBM; anything else (an HTML error page, JSON) is refused."""
    kind = media_type(content_type)
    if not content:
        raise OutputRefused("empty body")
    if kind.startswith("image/"):
        return _verify_image(content, kind, limits.image_bytes)
    if kind.startswith("video/"):
        return _verify_video(content, kind, limits.video_bytes)
    raise OutputRefused(f"content type {kind or 'missing'!r} is neither an image nor a video")


def _verify_image(content: bytes, kind: str, limit: int) -> VerifiedOutput:
    if len(content) > limit:
        raise OutputRefused(f"image of {len(content)} bytes exceeds {limit}")
    try:
        with warnings.catch_warnings():
            # a large ×4 result is expected; Pillow still raises past twice its pixel limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as img:
                fmt = img.format or ""
                img.verify()
    except Image.DecompressionBombError:
        raise OutputRefused("image has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise OutputRefused(f"{kind} body does not decode as an image ({exc})") from None
    if fmt not in OUTPUT_IMAGE_FORMATS:
        raise OutputRefused(f"image format {fmt or 'unknown'} is not PNG, JPEG or WEBP")
    ext, stored_type = OUTPUT_IMAGE_FORMATS[fmt]
    return VerifiedOutput(content, ext, stored_type)


def _verify_video(content: bytes, kind: str, limit: int) -> VerifiedOutput:
    if len(content) > limit:
        raise OutputRefused(f"video of {len(content)} bytes exceeds {limit}")
    found = video_kind(content)
    if found not in OUTPUT_VIDEO_KINDS:
        raise OutputRefused(f"{kind} body is not an MP4/MOV or WEBM video")
    ext, stored_type = OUTPUT_VIDEO_KINDS[found]
    return VerifiedOutput(content, ext, stored_type)
