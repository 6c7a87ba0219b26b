"""Deterministic procedural sample catalog: products that relate along category, colour and pattern.

``python -m core sample`` writes ``sample_catalog/`` (catalog images + ``catalog.csv``) and
``sample_catalog/queries/`` ("shopper photos": another view of a product, rotated, rescaled,
off-centre, on clutter, under other lighting, partly occluded) with ``queries.csv``.
"""

from __future__ import annotations

import csv
import io
import math
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

SIZE = 192
SS = 2  # supersampling for smooth edges
COLOURS = {
    "red": (200, 30, 40), "orange": (240, 130, 20), "yellow": (240, 210, 40), "green": (40, 150, 60),
    "teal": (20, 150, 150), "blue": (40, 70, 200), "purple": (120, 50, 160), "pink": (240, 120, 180),
    "brown": (120, 70, 30), "grey": (130, 130, 130),
}
PATTERNS = ["solid", "stripes", "dots", "stars", "checks", "zigzag"]
CATEGORIES = {  # name -> base price
    "t-shirt": 19, "dress": 49, "shoe": 69, "bag": 59, "mug": 12, "lamp": 39, "hat": 22,
}
PATTERN_WORD = {"solid": "plain", "stripes": "striped", "dots": "dotted", "stars": "starry",
                "checks": "checked", "zigzag": "zigzag"}
N_PRODUCTS = 240
N_QUERIES = 120


def _accent(colour: str) -> tuple[int, int, int]:
    return (30, 30, 30) if colour in ("yellow", "pink", "orange") else (250, 250, 245)


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        rr = r if i % 2 == 0 else r * 0.45
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def texture(colour: str, pattern: str, size: int) -> Image.Image:
    """A full-canvas fabric: base colour with the pattern in an accent colour."""
    base, acc = COLOURS[colour], _accent(colour)
    img = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(img)
    step = size // 8
    if pattern == "stripes":
        for y in range(0, size, step):
            d.rectangle([0, y, size, y + step // 3], fill=acc)
    elif pattern == "dots":
        for y in range(step // 2, size, step):
            for x in range(step // 2 + (y // step % 2) * step // 2, size, step):
                d.ellipse([x - step // 5, y - step // 5, x + step // 5, y + step // 5], fill=acc)
    elif pattern == "stars":
        for y in range(step // 2, size, int(step * 1.4)):
            for x in range(step // 2 + (y // step % 2) * step // 2, size, int(step * 1.4)):
                d.polygon(_star(x, y, step * 0.42), fill=acc)
    elif pattern == "checks":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=acc)
    elif pattern == "zigzag":
        for y in range(0, size + step, step):
            pts = [(x, y + (step // 3 if (x // (step // 2)) % 2 else 0)) for x in range(0, size + step, step // 2)]
            d.line(pts, fill=acc, width=max(2, step // 5))
    return img


def silhouette(category: str, size: int) -> Image.Image:
    """An L-mode mask of the product's outline."""
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    s = size / 100.0

    def P(pts):
        return [(x * s, y * s) for x, y in pts]

    if category == "t-shirt":
        d.polygon(P([(30, 15), (42, 12), (50, 18), (58, 12), (70, 15), (92, 32), (82, 45), (72, 38),
                     (72, 88), (28, 88), (28, 38), (18, 45), (8, 32)]), fill=255)
    elif category == "dress":
        d.polygon(P([(40, 8), (44, 8), (46, 20), (54, 20), (56, 8), (60, 8), (62, 30), (60, 42), (82, 92),
                     (18, 92), (40, 42), (38, 30)]), fill=255)
    elif category == "shoe":
        d.polygon(P([(10, 45), (35, 40), (45, 55), (75, 58), (92, 66), (94, 78), (10, 78)]), fill=255)
        d.rectangle(P([(8, 78), (96, 86)]), fill=255)
    elif category == "bag":
        d.rounded_rectangle(P([(15, 35), (85, 90)]), radius=6 * s, fill=255)
        d.arc(P([(30, 8), (70, 55)]), 180, 360, fill=255, width=int(6 * s))
    elif category == "mug":
        d.rounded_rectangle(P([(18, 22), (68, 88)]), radius=5 * s, fill=255)
        d.ellipse(P([(58, 35), (90, 72)]), outline=255, width=int(8 * s))
    elif category == "lamp":
        d.polygon(P([(30, 10), (70, 10), (85, 45), (15, 45)]), fill=255)
        d.rectangle(P([(46, 45), (54, 80)]), fill=255)
        d.ellipse(P([(25, 78), (75, 92)]), fill=255)
    elif category == "hat":
        d.ellipse(P([(5, 58), (95, 80)]), fill=255)
        d.chord(P([(22, 20), (78, 100)]), 180, 360, fill=255)
        d.rectangle(P([(22, 58), (78, 66)]), fill=255)
    else:
        raise ValueError(category)
    return m


def _product_layer(category: str, colour: str, pattern: str, big: int) -> tuple[Image.Image, Image.Image]:
    """The product itself (texture inside its outlined silhouette) and its mask, at ``big`` pixels."""
    mask = silhouette(category, big)
    img = texture(colour, pattern, big)
    edge = mask.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    img.paste((40, 40, 40), (0, 0), edge.filter(ImageFilter.MaxFilter(3)))
    return img, mask


def render_product(category: str, colour: str, pattern: str, size: int = SIZE) -> Image.Image:
    """The catalog photo: the product on a plain light background."""
    big = size * SS
    prod, mask = _product_layer(category, colour, pattern, big)
    img = Image.new("RGB", (big, big), (246, 246, 243))
    img.paste(prod, (0, 0), mask)
    return img.resize((size, size), Image.LANCZOS)


def studio_view(p: dict, angle: float, mirror: bool, size: int = SIZE) -> Image.Image:
    """Another catalog photo of the same product: turned by ``angle`` degrees, optionally mirrored."""
    big = size * SS
    prod, mask = _product_layer(p["category"], p["colour"], p["pattern"], big)
    if mirror:
        prod, mask = prod.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
    prod, mask = prod.rotate(angle, Image.BICUBIC), mask.rotate(angle, Image.BICUBIC)
    img = Image.new("RGB", (big, big), (246, 246, 243))
    img.paste(prod, (0, 0), mask)
    return img.resize((size, size), Image.LANCZOS)


def products() -> list[dict]:
    rng = random.Random(20261125)
    combos = [(c, col, p) for c in CATEGORIES for col in COLOURS for p in PATTERNS]
    chosen = sorted(rng.sample(combos, N_PRODUCTS), key=lambda t: (t[0], t[1], t[2]))
    out = []
    for i, (cat, col, pat) in enumerate(chosen):
        price = round(CATEGORIES[cat] * (0.7 + 0.6 * rng.random()), 2)
        out.append({"product_id": f"P{i:04d}", "title": f"{col.capitalize()} {PATTERN_WORD[pat]} {cat}",
                    "category": cat, "colour": col, "pattern": pat, "price": f"{price:.2f}"})
    return out


def _clutter(rng: random.Random, size: int) -> Image.Image:
    """A busy shop background: gradient, random shapes, noise."""
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    a, b = (np.array([rng.randrange(60, 230) for _ in range(3)]) for _ in range(2))
    t = np.linspace(0, 1, size)[:, None, None]
    arr = (a * (1 - t) + b * t) * np.ones((size, size, 3))
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randrange(6, 14)):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 16, size // 6)
        fill = tuple(rng.randrange(90, 200) for _ in range(3))  # shop shelves: muted colours
        (d.rectangle if rng.random() < 0.5 else d.ellipse)([x - r, y - r, x + r, y + r], fill=fill)
    noise = nrng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float64) + noise, 0, 255).astype(np.uint8))


def shopper_photo(p: dict, rng: random.Random, size: int = 224) -> tuple[Image.Image, str]:
    """Another view of ``p``: two of rotation, scale, offset, clutter, lighting, occlusion."""
    big = size * SS
    prod, mask = _product_layer(p["category"], p["colour"], p["pattern"], big)
    kinds = rng.sample(["rotate", "scale", "offset", "clutter", "light", "occlude"], 2)
    angle = rng.uniform(-25, 25) if "rotate" in kinds else 0.0
    prod, mask = prod.rotate(angle, Image.BICUBIC), mask.rotate(angle, Image.BICUBIC)
    scale = rng.uniform(0.7, 0.88) if "scale" in kinds else 0.95
    w = int(big * scale)
    prod, mask = prod.resize((w, w), Image.LANCZOS), mask.resize((w, w), Image.LANCZOS)
    bg = _clutter(rng, big) if "clutter" in kinds else Image.new("RGB", (big, big), (235, 232, 225))
    slack = big - w
    off = (rng.randrange(0, slack + 1), rng.randrange(0, slack + 1)) if "offset" in kinds else (slack // 2,) * 2
    bg.paste(prod, off, mask)
    if "occlude" in kinds:
        d = ImageDraw.Draw(bg)
        ow, oh = int(big * rng.uniform(0.15, 0.3)), int(big * rng.uniform(0.1, 0.2))
        x, y = rng.choice([(0, rng.randrange(big - oh)), (big - ow, rng.randrange(big - oh))])
        d.rectangle([x, y, x + ow, y + oh], fill=(90, 80, 70))
    img = bg.resize((size, size), Image.LANCZOS)
    if "light" in kinds:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.1))
    return img, "+".join(sorted(kinds))


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88, optimize=True)
    return buf.getvalue()


def write_sample(out: str | Path = "sample_catalog") -> Path:
    """Write the sample catalog to ``out`` (replacing it); the result is identical on every run."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "queries").mkdir()
    prods = products()
    rng = random.Random(7)
    rows = []
    for p in prods:
        img = render_product(p["category"], p["colour"], p["pattern"])
        rel = f"images/{p['product_id']}.jpg"
        (out / rel).write_bytes(_jpeg(img))
        rows.append({"image": rel, **p})
        # a second studio shot of every product: turned a little, mirrored for some
        view = studio_view(p, rng.uniform(8, 15) * rng.choice([-1, 1]), rng.random() < 0.3)
        rel2 = f"images/{p['product_id']}_b.jpg"
        (out / rel2).write_bytes(_jpeg(view))
        rows.append({"image": rel2, **p})
    cols = ["image", "product_id", "title", "category", "colour", "pattern", "price"]
    with open(out / "catalog.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    qrng = random.Random(11)
    queries = []
    for j, p in enumerate(sorted(qrng.sample(prods, N_QUERIES), key=lambda p: p["product_id"])):
        img, kinds = shopper_photo(p, qrng)
        rel = f"queries/q{j:03d}_{p['product_id']}.jpg"
        (out / rel).write_bytes(_jpeg(img))
        queries.append({"image": rel, "product_id": p["product_id"], "views": kinds})
    with open(out / "queries.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["image", "product_id", "views"], lineterminator="\n")
        w.writeheader()
        w.writerows(queries)
    return out
