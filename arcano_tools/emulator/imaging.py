"""The emulator's "GPU work": cheap Pillow stand-ins for Arcano's RunningHub apps.

Why real work at all: a person running the app with the embedded emulator must see a result
that obviously came from *their* input (bigger, re-posed, dressed), and tests can check it.
Each function stays well under a second for a 1024×1024 input on a small machine, so the
emulated task duration is set by the control surface, not by Pillow.

The pure functions (:func:`upscale`, :func:`change_pose`, :func:`try_on`) take and return
``PIL.Image`` objects; :func:`run_app` does the file I/O for one task and is meant to be called
in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

#: Pillow's PNG level 1 is ~5× faster than the default 6 for a few % more bytes: a 4096² ×4
#: upscale must not take seconds to *encode*.
PNG_COMPRESS_LEVEL = 1
#: Above this many output pixels the emulator answers like a GPU that ran out of memory
#: (a 4096² input ×4 would need ~800 MB of RAM here, and fails on real 24 GB cards too).
MAX_OUTPUT_PIXELS = 8192 * 8192

APP_KINDS = frozenset({"upscaler", "pose_changer", "veste_ai", "video_upscaler"})


class OutputTooLargeError(Exception):
    """The requested output would be too large to compute (reported as CUDA OOM)."""


def _normalise(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and bring any mode to RGB/RGBA, as ComfyUI's LoadImage does."""
    img = ImageOps.exif_transpose(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    return img.convert("RGBA" if has_alpha else "RGB")


def load_image(path: Path) -> Image.Image:
    """Open and fully decode an image file (raises ``PIL.UnidentifiedImageError`` if it is not)."""
    with Image.open(path) as img:
        img.load()
        return _normalise(img)


def upscale(img: Image.Image, scale: int) -> Image.Image:
    """Resize by ``scale`` (2 or 4) with LANCZOS: the honest cheap version of an upscaler."""
    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale!r}")
    img = _normalise(img)
    w, h = img.size
    if w * scale * h * scale > MAX_OUTPUT_PIXELS:
        raise OutputTooLargeError(f"{w}x{h} x{scale} is too large")
    return img.resize((w * scale, h * scale), Image.Resampling.LANCZOS)


def _mean_colour(img: Image.Image) -> tuple[int, ...]:
    """The average colour, used to fill the corners a rotation uncovers."""
    px = img.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    return tuple(px) if isinstance(px, tuple) else (int(px or 0),)


def change_pose(person: Image.Image, pose: Image.Image) -> Image.Image:
    """A visibly "new pose": the person mirrored, tilted and sheared, with the pose reference inset.

    The inset (bottom-right corner, white frame) makes it obvious to a viewer which reference
    drove the change; the geometric change makes the output clearly differ from the input.
    """
    base = _normalise(person).convert("RGB")
    w, h = base.size
    fill = _mean_colour(base)
    out = ImageOps.mirror(base)
    out = out.rotate(6, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=fill)
    shear = 0.08
    # Affine maps output (x, y) to input (x + shear*y - shear*h/2, y): a shear about the middle.
    out = out.transform(
        (w, h),
        Image.Transform.AFFINE,
        (1, shear, -shear * h / 2, 0, 1, 0),
        resample=Image.Resampling.BICUBIC,
        fillcolor=fill,
    )
    ref = _normalise(pose).convert("RGB")
    inset_w = max(8, round(w * 0.28))
    inset_h = max(8, round(ref.height * inset_w / max(1, ref.width)))
    inset_h = min(inset_h, max(8, round(h * 0.4)))
    ref = ImageOps.fit(ref, (inset_w, inset_h), Image.Resampling.BILINEAR)
    border = max(2, round(min(w, h) * 0.006))
    framed = ImageOps.expand(ref, border=border, fill=(255, 255, 255))
    margin = max(2, round(min(w, h) * 0.02))
    out.paste(framed, (w - framed.width - margin, h - framed.height - margin))
    return out


def _background_key(garment_rgb: Image.Image) -> Image.Image | None:
    """A mask hiding a near-white studio background, or None if the garment has none.

    Garment photos are usually shot on white; keying it out makes the try-on look like a
    garment rather than a pasted rectangle. Solid or dark backgrounds are left alone.
    """
    w, h = garment_rgb.size
    corners = [garment_rgb.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]
    if not all(isinstance(c, tuple) and min(c[:3]) >= 225 for c in corners):
        return None
    diff = ImageChops.difference(garment_rgb, Image.new("RGB", (w, h), (255, 255, 255)))
    key = diff.convert("L").point(lambda v: 255 if v > 24 else 0)
    # Keep the key only if it leaves a real garment (at least 5 % of the pixels).
    kept = key.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    if not isinstance(kept, int) or kept < 0.05 * 255:
        return None
    return key


def try_on(person: Image.Image, garment: Image.Image) -> Image.Image:
    """The garment composited on the person's torso: ~45 % of the width, centred at ~37 % height.

    The garment's alpha (or a keyed-out white background) times a feathered border forms the
    mask, so the edges blend instead of cutting a hard rectangle. Corners are never touched.
    """
    base = _normalise(person).convert("RGB")
    w, h = base.size
    g = _normalise(garment).convert("RGBA")
    target_w = max(4, round(w * 0.45))
    target_h = max(4, round(g.height * target_w / max(1, g.width)))
    max_h = max(4, round(h * 0.55))
    if target_h > max_h:  # a very tall garment: fit its height instead, keep the aspect
        target_w = max(4, round(target_w * max_h / target_h))
        target_h = max_h
    g = g.resize((target_w, target_h), Image.Resampling.LANCZOS)
    rgb = g.convert("RGB")
    mask = g.getchannel("A")
    key = _background_key(rgb)
    if key is not None:
        mask = ImageChops.multiply(mask, key)
    feather = max(2, round(min(target_w, target_h) * 0.06))
    border = Image.new("L", (target_w, target_h), 0)
    ImageDraw.Draw(border).rounded_rectangle(
        (feather, feather, target_w - 1 - feather, target_h - 1 - feather),
        radius=feather * 2,
        fill=255,
    )
    border = border.filter(ImageFilter.GaussianBlur(feather / 2))
    mask = ImageChops.multiply(mask, border).filter(ImageFilter.GaussianBlur(1))
    x = round(w / 2 - target_w / 2)
    y = round(h * 0.375 - target_h / 2)
    y = max(y, round(h * 0.08))  # keep the head (and the top corners) clear
    base.paste(rgb, (x, y), mask)
    return base


def save_png(img: Image.Image, path: Path) -> None:
    """Write a PNG fast (see :data:`PNG_COMPRESS_LEVEL`)."""
    img.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def run_app(kind: str, inputs: dict[str, Path], scale: int, out_path_stem: Path) -> Path:
    """Do one task's work from input files to an output file; returns the output path.

    ``inputs`` holds ``"main"`` (image or video) and, for two-image apps, ``"second"``.
    The output is ``out_path_stem`` plus ``.png`` (or the video's own extension).
    Blocking: call it with ``asyncio.to_thread``.
    """
    if kind not in APP_KINDS:
        raise ValueError(f"unknown app kind {kind!r}")
    if kind == "video_upscaler":
        src = inputs["main"]
        dst = out_path_stem.with_name(out_path_stem.name + (src.suffix.lower() or ".mp4"))
        shutil.copyfile(src, dst)
        return dst
    main = load_image(inputs["main"])
    if kind == "upscaler":
        out = upscale(main, scale)
    elif kind == "pose_changer":
        out = change_pose(main, load_image(inputs["second"]))
    else:
        out = try_on(main, load_image(inputs["second"]))
    dst = out_path_stem.with_name(out_path_stem.name + ".png")
    save_png(out, dst)
    return dst
