"""The emulator's Pillow work: people must see a real, input-specific result from each app."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from arcano_tools.emulator import imaging


def _person(size: tuple[int, int] = (200, 300)) -> Image.Image:
    """A recognisable, asymmetric 'person': gradient background, a dark figure on the left."""
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.15, h * 0.05, w * 0.35, h * 0.2), fill=(200, 150, 120))
    draw.rectangle((w * 0.1, h * 0.2, w * 0.4, h * 0.7), fill=(30, 60, 160))
    return img


def _rgb(img: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    px = img.getpixel(xy)
    assert isinstance(px, tuple)
    return px[0], px[1], px[2]


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    return ImageStat.Stat(diff).mean[0]


@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_multiplies_both_sides(scale: int) -> None:
    out = imaging.upscale(_person((50, 30)), scale)
    assert out.size == (50 * scale, 30 * scale)
    assert out.mode == "RGB"


def test_upscale_keeps_alpha_and_refuses_other_scales() -> None:
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 128))
    assert imaging.upscale(rgba, 2).mode == "RGBA"
    with pytest.raises(ValueError):
        imaging.upscale(rgba, 3)


def test_upscale_refuses_outputs_a_gpu_could_not_hold() -> None:
    huge = Image.new("RGB", (4096, 4096))
    with pytest.raises(imaging.OutputTooLargeError):
        imaging.upscale(huge, 4)


def test_pose_change_differs_visibly_and_shows_the_reference() -> None:
    person = _person()
    pose = Image.new("RGB", (100, 150), (0, 200, 0))
    out = imaging.change_pose(person, pose)
    assert out.size == person.size
    # Mirrored + tilted: the picture as a whole is clearly different, not a few pixels.
    assert _mean_abs_diff(out, person) > 25
    # The dark figure moved from the left half to the right half.
    left, right = out.crop((0, 0, 100, 300)), out.crop((100, 0, 200, 300))
    blue = lambda im: ImageStat.Stat(im).mean[2] - ImageStat.Stat(im).mean[0]  # noqa: E731
    assert blue(right) > blue(left)
    # The pose reference is inset in the bottom-right corner.
    w, h = out.size
    r, g, b = _rgb(out, (w - 20, h - 20))
    assert g > 150
    assert r < 80
    assert b < 80


def test_try_on_changes_the_torso_but_not_the_corners() -> None:
    person = _person((400, 600))
    garment = Image.new("RGB", (300, 300), (220, 20, 20))
    out = imaging.try_on(person, garment)
    assert out.size == person.size
    # Torso centre: ~50 % width, ~37 % height, now the garment's red.
    r, g, b = _rgb(out, (200, 225))
    assert r > 180
    assert g < 70
    assert b < 70
    # Corners (10 % squares) untouched, pixel for pixel.
    for box in ((0, 0, 40, 60), (360, 0, 400, 60), (0, 540, 40, 600), (360, 540, 400, 600)):
        assert ImageChops.difference(out.crop(box), person.crop(box)).getbbox() is None
    # The garment is ~45 % of the width: the changed area spans about that much.
    bbox = ImageChops.difference(out, person).getbbox()
    assert bbox is not None
    assert 0.35 * 400 <= bbox[2] - bbox[0] <= 0.5 * 400


def test_try_on_keys_out_a_white_studio_background() -> None:
    person = Image.new("RGB", (400, 600), (40, 40, 40))
    garment = Image.new("RGB", (300, 300), (255, 255, 255))
    ImageDraw.Draw(garment).rectangle((100, 100, 200, 200), fill=(20, 20, 220))
    out = imaging.try_on(person, garment)
    # The garment lands at x 110..290; its white margin must not paint the person white.
    assert max(_rgb(out, (125, 225))) < 90
    r, _, b = _rgb(out, (200, 225))
    assert b > 150
    assert r < 90


def test_run_app_writes_png_and_passes_video_through(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    _person((64, 48)).save(src)
    out = imaging.run_app("upscaler", {"main": src}, 4, tmp_path / "out")
    assert out.suffix == ".png"
    with Image.open(out) as img:
        assert img.size == (256, 192)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)))
    vout = imaging.run_app("video_upscaler", {"main": video}, 2, tmp_path / "vout")
    assert vout.suffix == ".mp4"
    assert vout.read_bytes() == video.read_bytes()


def test_run_app_raises_on_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError):  # PIL.UnidentifiedImageError is an OSError
        imaging.run_app("upscaler", {"main": bad}, 2, tmp_path / "out")


def test_each_operation_is_fast_on_a_1024_image() -> None:
    """The task duration must come from the control settings, not from Pillow."""
    big = _person((1024, 1024))
    for op in (
        lambda: imaging.upscale(big, 2),
        lambda: imaging.change_pose(big, big),
        lambda: imaging.try_on(big, big),
    ):
        t0 = time.perf_counter()
        op()
        assert time.perf_counter() - t0 < 2.0  # ~0.1-0.3 s here; generous for busy CI
