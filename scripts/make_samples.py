"""Draw the sample pictures in ``assets/samples/`` (made by the project, so free to ship).

Run ``python scripts/make_samples.py`` after changing a drawing; the files are committed.
Each tool page offers its samples in one click ("Experimente com um exemplo"); the home page
shows the landscape at low resolution beside the same drawing at 4× (what an upscale aims at).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "assets" / "samples"
#: The landscape's size as a small photo; the home page's "after" is 4× that.
SMALL = (240, 160)
HOME_SCALE = 4
SKIN = (224, 172, 140)
HAIR = (60, 40, 30)


def landscape(width: int, height: int) -> Image.Image:
    """Sky, sun, two mountain ranges, a lake and a pine — smooth gradients and sharp edges,
    so blur and detail show in a before/after."""
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    horizon = int(height * 0.62)
    for y in range(horizon):
        t = y / horizon
        draw.line(
            [(0, y), (width, y)], fill=(int(40 + 200 * t), int(90 + 120 * t), int(200 + 30 * t))
        )
    s = width / SMALL[0]
    draw.ellipse(
        [width * 0.7, height * 0.12, width * 0.7 + 34 * s, height * 0.12 + 34 * s],
        fill=(255, 214, 90),
    )
    far = [
        (0, horizon),
        (width * 0.2, height * 0.32),
        (width * 0.42, horizon * 0.85),
        (width * 0.6, height * 0.28),
        (width * 0.85, horizon * 0.8),
        (width, height * 0.4),
        (width, horizon),
    ]
    draw.polygon(far, fill=(92, 110, 150))
    near = [
        (0, horizon),
        (width * 0.15, height * 0.48),
        (width * 0.35, horizon),
        (width * 0.55, height * 0.5),
        (width * 0.75, horizon),
    ]
    draw.polygon(near, fill=(46, 92, 70))
    for y in range(horizon, height):
        t = (y - horizon) / max(1, height - horizon)
        draw.line(
            [(0, y), (width, y)], fill=(int(30 + 40 * t), int(80 + 60 * t), int(140 + 40 * t))
        )
    for i in range(0, width, max(2, int(12 * s))):  # ripples
        y = horizon + (i * 7919) % max(1, height - horizon)
        draw.line([(i, y), (i + 6 * s, y)], fill=(170, 200, 230), width=max(1, int(s)))
    x = width * 0.12
    for k in range(4):  # a pine
        top = height * (0.42 + 0.06 * k)
        draw.polygon(
            [(x, top), (x - (10 + 5 * k) * s, top + 22 * s), (x + (10 + 5 * k) * s, top + 22 * s)],
            fill=(20, 70 - 5 * k, 40),
        )
    trunk_top = height * 0.42 + 88 * s * height / width / 1.5
    draw.rectangle(
        [x - 2 * s, min(trunk_top, horizon), x + 2 * s, horizon + 4 * s], fill=(80, 50, 30)
    )
    return img


def person(width: int, height: int, *, arms_up: bool, shirt: tuple[int, int, int]) -> Image.Image:
    """A figure on a studio background: head, hair, shirt, trousers, arms down or up."""
    img = Image.new("RGB", (width, height), (236, 232, 226))
    d = ImageDraw.Draw(img)
    cx = width // 2
    u = width / 100
    d.ellipse([cx - 11 * u, 10 * u, cx + 11 * u, 34 * u], fill=SKIN)
    d.chord([cx - 12 * u, 8 * u, cx + 12 * u, 30 * u], 180, 360, fill=HAIR)
    d.rectangle([cx - 4 * u, 33 * u, cx + 4 * u, 38 * u], fill=SKIN)
    d.rounded_rectangle([cx - 18 * u, 37 * u, cx + 18 * u, 85 * u], radius=int(6 * u), fill=shirt)
    d.rectangle([cx - 16 * u, 84 * u, cx + 16 * u, 130 * u], fill=(50, 60, 90))
    d.line([(cx, 95 * u), (cx, 130 * u)], fill=(236, 232, 226), width=int(3 * u))
    for side in (-1, 1):
        shoulder = (cx + side * 17 * u, 42 * u)
        hand = (cx + side * 30 * u, 8 * u) if arms_up else (cx + side * 24 * u, 82 * u)
        d.line([shoulder, hand], fill=shirt, width=int(8 * u))
        d.ellipse([hand[0] - 4 * u, hand[1] - 4 * u, hand[0] + 4 * u, hand[1] + 4 * u], fill=SKIN)
    return img


def pose_reference(width: int, height: int) -> Image.Image:
    """A stick figure with its arms up: the pose to copy."""
    img = Image.new("RGB", (width, height), (250, 250, 250))
    d = ImageDraw.Draw(img)
    cx, u = width // 2, width / 100
    line = {"fill": (30, 30, 30), "width": int(4 * u)}
    d.ellipse([cx - 9 * u, 12 * u, cx + 9 * u, 30 * u], outline=(30, 30, 30), width=int(4 * u))
    d.line([(cx, 30 * u), (cx, 85 * u)], **line)
    d.line([(cx, 40 * u), (cx - 28 * u, 10 * u)], **line)
    d.line([(cx, 40 * u), (cx + 28 * u, 10 * u)], **line)
    d.line([(cx, 85 * u), (cx - 18 * u, 130 * u)], **line)
    d.line([(cx, 85 * u), (cx + 18 * u, 130 * u)], **line)
    return img


def garment(width: int, height: int) -> Image.Image:
    """A red T-shirt on white."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    u = width / 100
    d.polygon(
        [
            (30 * u, 15 * u),
            (42 * u, 10 * u),
            (58 * u, 10 * u),
            (70 * u, 15 * u),
            (92 * u, 32 * u),
            (82 * u, 45 * u),
            (72 * u, 38 * u),
            (72 * u, 92 * u),
            (28 * u, 92 * u),
            (28 * u, 38 * u),
            (18 * u, 45 * u),
            (8 * u, 32 * u),
        ],
        fill=(200, 30, 40),
    )
    d.arc([40 * u, 4 * u, 60 * u, 20 * u], 0, 180, fill=(150, 20, 30), width=int(2 * u))
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    small = landscape(*SMALL).filter(ImageFilter.GaussianBlur(0.6))
    small.save(OUT / "paisagem.png", optimize=True)
    big = landscape(SMALL[0] * HOME_SCALE, SMALL[1] * HOME_SCALE)
    big.save(OUT / "paisagem-4x.jpg", quality=82, optimize=True)
    person(200, 280, arms_up=False, shirt=(70, 130, 180)).save(OUT / "pessoa.png", optimize=True)
    pose_reference(200, 280).save(OUT / "pose.png", optimize=True)
    garment(200, 200).save(OUT / "roupa.png", optimize=True)
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
