"""Draws examples/cat.jpg, the picture the README's first command sends to the Space.

    python examples/draw_cat.py      # needs Pillow (pip install pillow)

A cartoon cat drawn from shapes: no photo and no third-party material. The drawing is
deterministic; the JPEG's bytes may differ slightly between Pillow versions.
"""

import os

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 320, 240
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cat.jpg")

SKY = (198, 226, 240)
FLOOR = (222, 200, 160)
FUR = (236, 148, 60)
STRIPE = (190, 100, 30)
INNER_EAR = (246, 178, 170)
EYE = (90, 170, 70)
DARK = (40, 30, 30)
WHITE = (250, 250, 245)


def draw(image: Image.Image) -> None:
    pen = ImageDraw.Draw(image)
    pen.rectangle((0, 170, WIDTH, HEIGHT), fill=FLOOR)
    # Tail, body and front paws.
    pen.arc((196, 96, 296, 206), start=200, end=20, fill=FUR, width=14)
    pen.ellipse((92, 110, 228, 214), fill=FUR)
    for x in (124, 150, 176):
        pen.line((x, 128, x + 8, 160), fill=STRIPE, width=6)
    pen.ellipse((108, 196, 146, 220), fill=WHITE)
    pen.ellipse((174, 196, 212, 220), fill=WHITE)
    # Ears, then the head over their base.
    pen.polygon([(104, 66), (116, 10), (150, 46)], fill=FUR)
    pen.polygon([(216, 66), (204, 10), (170, 46)], fill=FUR)
    pen.polygon([(114, 58), (120, 24), (142, 46)], fill=INNER_EAR)
    pen.polygon([(206, 58), (200, 24), (178, 46)], fill=INNER_EAR)
    pen.ellipse((96, 30, 224, 140), fill=FUR)
    for x in (146, 160, 174):
        pen.line((x, 34, x, 52), fill=STRIPE, width=5)
    # Eyes, muzzle, nose, mouth and whiskers.
    for left in (124, 172):
        pen.ellipse((left, 66, left + 24, 90), fill=EYE)
        pen.ellipse((left + 9, 68, left + 15, 88), fill=DARK)
        pen.ellipse((left + 14, 71, left + 18, 75), fill=WHITE)
    pen.ellipse((134, 94, 186, 130), fill=WHITE)
    pen.polygon([(152, 98), (168, 98), (160, 108)], fill=INNER_EAR)
    pen.line((160, 108, 160, 114), fill=DARK, width=2)
    pen.arc((148, 106, 160, 120), start=0, end=180, fill=DARK, width=2)
    pen.arc((160, 106, 172, 120), start=0, end=180, fill=DARK, width=2)
    for dy in (-6, 0, 6):
        pen.line((138, 110, 90, 104 + 2 * dy), fill=DARK, width=1)
        pen.line((182, 110, 230, 104 + 2 * dy), fill=DARK, width=1)


def main() -> None:
    image = Image.new("RGB", (WIDTH, HEIGHT), SKY)
    draw(image)
    image.save(OUT, format="JPEG", quality=85, optimize=True)
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
