"""Test pictures: PNG bytes built in memory, and a server's answer decoded back to pixels."""

from __future__ import annotations

import io

from PIL import Image

Colour = tuple[int, ...] | int


def png_bytes(
    size: tuple[int, int] = (64, 48), color: Colour = (200, 40, 40), *, mode: str = "RGB"
) -> bytes:
    """A PNG of one solid colour (``mode="L"`` with an int colour for greyscale)."""
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def decode_image(content: bytes) -> Image.Image:
    """The picture in ``content`` (any format Pillow reads), fully loaded, as RGB."""
    with Image.open(io.BytesIO(content)) as img:
        img.load()
        return img.convert("RGB")
