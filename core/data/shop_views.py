"""Synthetic shop photos of one catalog picture: what a shopper's photo does to a product, made from the studio
picture alone (``train-metric --from-catalog``).

A shop photo shows part of the product close up, several copies of it, other things around it, another view and
light, and a hand or a price tag over it. :func:`shop_view` draws one such photo, the same for the same seed; each
effect is one of :data:`AUGMENTATIONS` and can be left out (the ablations of docs/metric_learning.md). The
product is cut out of its backdrop by :func:`core.data.scenes.cutout`, and generated backgrounds and price tags are
those of the scene sets (:mod:`core.data.scenes`).
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from core.data.scenes import BACKGROUNDS, background, cutout

#: every effect a synthetic shop photo may have; :func:`shop_view` applies each with its own probability
AUGMENTATIONS = ("crop", "pile", "backdrop", "clutter", "perspective", "light", "glare", "blur", "jpeg", "occlude")
SIZE = 448  # the photo's longer side (the embedder reads it at its own input size)
VERSION = 2  # part of the cache key of the features of synthetic photos: raise it when they are drawn otherwise


def shop_view(img: Image.Image, seed: str, backdrops: Sequence[Image.Image] = (),
              augs: Sequence[str] = AUGMENTATIONS) -> Image.Image:
    """One synthetic shop photo of the product in ``img`` (seeded by ``seed``): it alone, a heap or shelf rows
    of it, on a background (a crop of one of ``backdrops``, other catalog pictures, or generated clutter) with
    another product beside it, re-lit, seen at an angle, partly hidden, cropped, blurred and JPEG-compressed,
    each as ``augs`` allows."""
    rng = random.Random(seed)
    on = set(augs)
    prod = cutout(img.convert("RGB"))
    w, h = SIZE, round(SIZE * rng.uniform(0.75, 1.33))
    photo = _background(rng, (w, h), backdrops, on)
    box = _paste_copies(rng, photo, prod, on)
    if "backdrop" in on and backdrops and rng.random() < 0.4:
        _neighbours(rng, photo, backdrops)
    if "occlude" in on and rng.random() < 0.4:
        (_hand if rng.random() < 0.5 else _tag)(rng, photo, box)
    if "perspective" in on and rng.random() < 0.5:
        photo = _perspective(rng, photo)
    if "crop" in on and rng.random() < 0.7:
        photo = _crop_around(rng, photo, box)
    if "light" in on:
        photo = _light(rng, photo)
    if "glare" in on and rng.random() < 0.3:
        photo = _glare(rng, photo)
    if "blur" in on and rng.random() < 0.4:
        photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.2)))
    if "jpeg" in on and rng.random() < 0.6:
        buf = io.BytesIO()
        photo.save(buf, "JPEG", quality=rng.randrange(15, 65))
        photo = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return photo


def _background(rng: random.Random, size: tuple[int, int], backdrops: Sequence[Image.Image],
                on: set[str]) -> Image.Image:
    """A crop of another catalog picture, a generated background (shelf, wood, clutter...) or a plain white."""
    kinds = [k for k in ("backdrop", "clutter") if k in on and (k != "backdrop" or backdrops)]
    kind = rng.choice(kinds) if kinds else "white"
    if kind == "backdrop":
        src = rng.choice(list(backdrops)).convert("RGB")
        s = rng.uniform(0.3, 0.8)
        cw, ch = max(8, int(src.width * s)), max(8, int(src.height * s))
        x, y = rng.randrange(src.width - cw + 1), rng.randrange(src.height - ch + 1)
        return src.crop((x, y, x + cw, y + ch)).resize(size, Image.BILINEAR).filter(
            ImageFilter.GaussianBlur(rng.uniform(0, 2)))
    if kind == "clutter":
        return background(rng, rng.choice(BACKGROUNDS), size)
    return Image.new("RGB", size, (255, 255, 255))


def _copy(rng: random.Random, prod: Image.Image, height: int, spin: bool) -> Image.Image:
    """One copy of the cut-out product, ``height`` tall, turned (all the way round with ``spin``) and re-lit."""
    w = max(4, round(prod.width * height / max(prod.height, 1)))
    c = prod.resize((w, max(4, height)), Image.BILINEAR)
    angle = rng.uniform(-180, 180) if spin else rng.uniform(-8, 8)
    c = c.rotate(angle, Image.BILINEAR, expand=True)
    rgb = ImageEnhance.Brightness(c.convert("RGB")).enhance(rng.uniform(0.7, 1.1))
    rgb.putalpha(c.getchannel("A"))
    return rgb


def _paste_copies(rng: random.Random, photo: Image.Image, prod: Image.Image, on: set[str]
                  ) -> tuple[int, int, int, int]:
    """The product pasted once near the middle, or (``pile``) as a bin heaped with copies or shelf rows of them
    filling the photo, as loose fruit and cartons are shown; returns the box of the copy nearest the middle."""
    w, h = photo.size
    kind = rng.choice(["one", "heap", "rows"]) if "pile" in on else "one"
    if kind == "one":
        ph = round(h * rng.uniform(0.45, 0.95))
        copies = [(_copy(rng, prod, min(ph, round(ph * w * 0.95 / max(prod.width * ph / max(prod.height, 1), 1))),
                         False), w / 2, h / 2)]
    elif kind == "heap":  # a bin of loose products: many small copies, every way round, over the whole photo
        ph = round(h * rng.uniform(0.15, 0.4))
        n = int(2.2 * w * h / max(ph * ph, 1))
        copies = [(_copy(rng, prod, round(ph * rng.uniform(0.85, 1.15)), True), rng.uniform(0, w), rng.uniform(0, h))
                  for _ in range(min(n, 80))]
    else:  # shelf rows: copies side by side, one row above another
        ph = round(h * rng.uniform(0.25, 0.55))
        one = _copy(rng, prod, ph, False)
        step_x, step_y = max(8, round(one.width * rng.uniform(0.95, 1.1))), round(ph * rng.uniform(1.05, 1.3))
        x0, y0 = rng.randrange(-step_x // 2, 1), rng.randrange(-step_y // 2, 1)
        copies = [(one, x + one.width / 2, y + ph / 2) for y in range(y0, h, step_y) for x in range(x0, w, step_x)]
    near = min(range(len(copies)), key=lambda i: (copies[i][1] - w / 2) ** 2 + (copies[i][2] - h / 2) ** 2)
    order = [i for i in range(len(copies)) if i != near]
    if kind == "heap":
        order.insert(rng.randrange(len(order) + 1), near)  # somewhere in the heap
    else:
        order.append(near)
    for i in order:
        c, x, y = copies[i]
        photo.paste(c.convert("RGB"), (round(x - c.width / 2), round(y - c.height / 2)), c.getchannel("A"))
    c, x, y = copies[near]
    return round(x - c.width / 2), round(y - c.height / 2), round(x + c.width / 2), round(y + c.height / 2)


def _neighbours(rng: random.Random, photo: Image.Image, backdrops: Sequence[Image.Image]) -> None:
    """Another product beside it: a heap or a row of another catalog picture's copies along one side."""
    w, h = photo.size
    other = cutout(rng.choice(list(backdrops)).convert("RGB"))
    ph = round(h * rng.uniform(0.15, 0.4))
    side = rng.choice(["left", "right", "top", "bottom"])
    x_lo, x_hi = (0, w * 0.3) if side == "left" else (w * 0.7, w) if side == "right" else (0, w)
    y_lo, y_hi = (0, h * 0.3) if side == "top" else (h * 0.7, h) if side == "bottom" else (0, h)
    for _ in range(rng.randrange(3, 12)):
        c = _copy(rng, other, ph, rng.random() < 0.5)
        x, y = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
        photo.paste(c.convert("RGB"), (round(x - c.width / 2), round(y - c.height / 2)), c.getchannel("A"))


def _crop_around(rng: random.Random, photo: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """A close-up: 25-90% of the photo's area, its centre inside the product's box (part of it may be cut)."""
    w, h = photo.size
    s = rng.uniform(0.25, 0.9) ** 0.5
    cw, ch = max(16, int(w * s)), max(16, int(h * s))
    px = rng.randint(max(0, box[0]), max(max(0, box[0]), min(w, box[2]) - 1))
    py = rng.randint(max(0, box[1]), max(max(0, box[1]), min(h, box[3]) - 1))
    x, y = min(max(0, px - cw // 2), w - cw), min(max(0, py - ch // 2), h - ch)
    return photo.crop((x, y, x + cw, y + ch))


def _perspective(rng: random.Random, photo: Image.Image) -> Image.Image:
    """Seen from a little aside: each corner moved by up to 12% of the side."""
    w, h = photo.size
    d = lambda n: rng.uniform(0, 0.12) * n  # noqa: E731
    src = [(d(w), d(h)), (w - d(w), d(h)), (w - d(w), h - d(h)), (d(w), h - d(h))]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    a = []
    for (x, y), (u, v) in zip(src, dst):
        a += [[u, v, 1, 0, 0, 0, -x * u, -x * v], [0, 0, 0, u, v, 1, -y * u, -y * v]]
    coeffs = np.linalg.solve(np.array(a, float), np.array([c for p in src for c in p], float))
    return photo.transform((w, h), Image.PERSPECTIVE, tuple(coeffs), Image.BILINEAR, fillcolor=(128, 128, 128))


def _light(rng: random.Random, photo: Image.Image) -> Image.Image:
    """Another white balance (a gain per channel), brightness, contrast and saturation."""
    gains = np.array([rng.uniform(0.8, 1.2) for _ in range(3)])
    arr = np.clip(np.asarray(photo, np.float32) * gains, 0, 255).astype(np.uint8)
    out = ImageEnhance.Brightness(Image.fromarray(arr)).enhance(rng.uniform(0.6, 1.3))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.2))
    return ImageEnhance.Color(out).enhance(rng.uniform(0.6, 1.3))


def _glare(rng: random.Random, photo: Image.Image) -> Image.Image:
    """A bright blob of reflected light."""
    w, h = photo.size
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.08, 0.3) * max(w, h)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None] * rng.uniform(0.5, 0.95)
    arr = np.asarray(photo, np.float32)
    return Image.fromarray(np.clip(arr + (255 - arr) * blob, 0, 255).astype(np.uint8))


def _hand(rng: random.Random, photo: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A hand holding the product: a skin-coloured palm with fingers over one side of its box."""
    d = ImageDraw.Draw(photo)
    skin = (rng.randrange(150, 235), rng.randrange(100, 180), rng.randrange(70, 150))
    bw, bh = box[2] - box[0], box[3] - box[1]
    r = max(6, round(min(bw, bh) * rng.uniform(0.18, 0.3)))
    x = box[0] if rng.random() < 0.5 else box[2]
    y = rng.randint(box[1] + bh // 4, box[1] + 3 * bh // 4)
    d.ellipse([x - 2 * r, y - r, x + r // 2, y + 2 * r], fill=skin)
    for k in range(4):
        fy = y - r + k * r * 0.7
        d.rounded_rectangle([x - r // 2, fy, x + round(r * 1.3), fy + r * 0.55], radius=r // 4, fill=skin)


def _tag(rng: random.Random, photo: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A price tag stuck over the lower part of the product."""
    d = ImageDraw.Draw(photo)
    bw, bh = box[2] - box[0], box[3] - box[1]
    tw, th = max(12, round(bw * rng.uniform(0.3, 0.6))), max(8, round(bh * rng.uniform(0.12, 0.25)))
    x = rng.randint(box[0], max(box[0], box[2] - tw))
    y = rng.randint(box[1] + bh // 2, max(box[1] + bh // 2, box[3] - th))
    d.rectangle([x, y, x + tw, y + th], fill=rng.choice([(250, 250, 246), (250, 220, 40), (240, 60, 50)]),
                outline=(90, 90, 90))
    d.rectangle([x + 3, y + 3, x + tw * 2 // 3, y + th // 2], fill=(30, 30, 30))
