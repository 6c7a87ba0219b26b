"""Deterministic multi-product scenes (shelves, tables, outfits) built from a catalog's images, with
ground-truth boxes: the evaluation set of region search.

``python -m core scenes --out DIR [--seed N]`` writes ``DIR/scenes/sNNN.jpg`` and ``DIR/boxes.csv`` (one row per
product: image, product_id, the visible box in pixels, whether it touches or overlaps a neighbour). Each scene
holds 2-6 distinct products, cut out of one of their catalog images (the catalog's plain backdrop removed),
turned a little, mirrored, re-lit, on one of several backgrounds with price tags as distractors; about half of
the scenes pack products side by side (touching) or overlapping. Tune on :data:`DEV_SEED`, report
:data:`TEST_SEED` too.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from core.data.catalog import load_catalog
from core.data.images import open_image

SCENE_SIZE = (800, 600)
DEV_SEED, TEST_SEED = 1, 2
N_SCENES = 30
LAYOUTS = ("apart", "touching", "overlapping")
BACKGROUNDS = ("plain", "gradient", "shelf", "wood", "clutter")
BOXES_CSV = "boxes.csv"
COLUMNS = ["image", "product_id", "left", "top", "right", "bottom", "touching", "layout"]


@dataclass(frozen=True)
class SceneObject:
    product_id: str
    box: tuple[int, int, int, int]  # visible pixels: left, top, right (exclusive), bottom (exclusive)
    touching: bool = False  # its box touches or overlaps another product's


@dataclass(frozen=True)
class Scene:
    image: Path
    objects: tuple[SceneObject, ...]
    layout: str = ""


# ---------------------------------------------------------------- products
def cutout(img: Image.Image, tol: int = 26) -> Image.Image:
    """RGBA copy of a catalog photo cropped to its product: the backdrop (pixels near the border's median
    colour that connect to the border) made transparent. A photo without a plain backdrop is kept whole."""
    from scipy import ndimage  # here: a search imports this module (negatives' backgrounds), scipy costs 0.3 s

    arr = np.asarray(img.convert("RGB"), np.int16)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    bg = np.median(border, axis=0)
    if np.abs(border - bg).max(axis=1).mean() > tol / 2:  # busy border: no backdrop to remove
        return img.convert("RGBA")
    near = np.abs(arr - bg).max(axis=2) <= tol
    lab, _ = ndimage.label(near)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    mask = ~np.isin(lab, edge[edge > 0])
    mask = ndimage.binary_opening(mask, iterations=1)
    ys, xs = np.nonzero(mask)
    if len(xs) < 16:
        return img.convert("RGBA")
    out = img.convert("RGBA")
    out.putalpha(Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6)))
    return out.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))


def _variant(prod: Image.Image, rng: random.Random, height: int) -> Image.Image:
    """A shop-floor view of a cut-out product: mirrored or not, turned a little, re-lit, ``height`` tall."""
    if rng.random() < 0.3:
        prod = prod.transpose(Image.FLIP_LEFT_RIGHT)
    prod = prod.rotate(rng.uniform(-10, 10), Image.BICUBIC, expand=True)
    a = np.asarray(prod.getchannel("A"))
    ys, xs = np.nonzero(a > 127)
    prod = prod.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    w = max(8, round(prod.width * height / prod.height))
    prod = prod.resize((w, height), Image.LANCZOS)
    rgb = ImageEnhance.Brightness(prod.convert("RGB")).enhance(rng.uniform(0.8, 1.2))
    rgb = ImageEnhance.Contrast(rgb).enhance(rng.uniform(0.85, 1.1))
    rgb.putalpha(prod.getchannel("A"))
    return rgb


# ---------------------------------------------------------------- backgrounds
def _noise(rng: random.Random, img: Image.Image, sigma: float) -> Image.Image:
    n = np.random.default_rng(rng.randrange(1 << 30)).normal(0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float64) + n, 0, 255).astype(np.uint8))


def _colour(rng: random.Random, lo: int = 60, hi: int = 230) -> tuple[int, int, int]:
    return tuple(rng.randrange(lo, hi) for _ in range(3))


def background(rng: random.Random, kind: str, size: tuple[int, int] = SCENE_SIZE) -> Image.Image:
    """One of :data:`BACKGROUNDS`: a plain wall, a gradient, shelf boards, wood grain or a muted clutter."""
    w, h = size
    if kind == "plain":
        img = Image.new("RGB", size, _colour(rng, 90, 240))
    elif kind == "gradient":
        a, b = np.array(_colour(rng)), np.array(_colour(rng))
        t = np.linspace(0, 1, h)[:, None, None]
        img = Image.fromarray(((a * (1 - t) + b * t) * np.ones((h, w, 3))).astype(np.uint8))
    elif kind == "shelf":
        img = Image.new("RGB", size, _colour(rng, 150, 235))
        d = ImageDraw.Draw(img)
        board = _colour(rng, 70, 170)
        for y in range(rng.randrange(120, 200), h, rng.randrange(220, 300)):
            d.rectangle([0, y, w, y + rng.randrange(10, 22)], fill=board)
    elif kind == "wood":
        base = np.array(_colour(rng, 110, 200), np.float64)
        x = np.arange(w)[None, :] + 25 * np.sin(np.arange(h)[:, None] / rng.uniform(30, 90))
        grain = 0.85 + 0.15 * np.sin(x / rng.uniform(4, 12))
        img = Image.fromarray(np.clip(base * grain[..., None], 0, 255).astype(np.uint8))
    elif kind == "clutter":
        img = Image.new("RGB", size, _colour(rng, 120, 220))
        d = ImageDraw.Draw(img)
        for _ in range(rng.randrange(8, 16)):
            x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(20, 70)
            shape = d.rectangle if rng.random() < 0.5 else d.ellipse
            shape([x - r, y - r, x + r, y + r], fill=_colour(rng, 110, 200))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))
    else:
        raise ValueError(f"unknown background {kind!r}; choose one of {', '.join(BACKGROUNDS)}")
    return _noise(rng, img, rng.uniform(2, 6))


def _price_tag(rng: random.Random, img: Image.Image, taken: np.ndarray) -> None:
    """A small white label with dark bars (price and barcode) somewhere no product is."""
    d = ImageDraw.Draw(img)
    for _ in range(20):
        tw, th = rng.randrange(36, 70), rng.randrange(20, 34)
        x, y = rng.randrange(0, img.width - tw), rng.randrange(0, img.height - th)
        if not taken[y:y + th, x:x + tw].any():
            d.rectangle([x, y, x + tw, y + th], fill=(250, 250, 246), outline=(90, 90, 90))
            d.rectangle([x + 4, y + 4, x + tw * 2 // 3, y + th // 2], fill=(30, 30, 30))
            for bx in range(x + 4, x + tw - 4, 3):
                if rng.random() < 0.6:
                    d.line([bx, y + th * 2 // 3, bx, y + th - 4], fill=(40, 40, 40))
            return


# ---------------------------------------------------------------- layout
def _rows(sizes: list[tuple[int, int]], gaps: list[int], width: int) -> list[list[int]]:
    """Split products (in order) into rows no wider than ``width``."""
    rows, cur, used = [], [], 0
    for i, (w, _) in enumerate(sizes):
        need = w + (gaps[i] if cur else 0)
        if cur and used + need > width:
            rows.append(cur)
            cur, used = [], 0
            need = w
        cur.append(i)
        used += need
    return rows + [cur]


def _place_rows(rng: random.Random, sizes, gaps, size) -> list[tuple[int, int]] | None:
    """Products side by side on one or two shelves (bottom-aligned), each row centred with a random shift."""
    w, h = size
    rows = _rows(sizes, gaps, w - 20)
    heights = [max(sizes[i][1] for i in r) for r in rows]
    if len(rows) > 2 or sum(heights) + 30 > h:
        return None
    pos: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    slack_y = h - sum(heights)
    y = rng.randrange(5, max(6, slack_y // (len(rows) + 1)))
    for r, rh in zip(rows, heights):
        total = sum(sizes[i][0] for i in r) + sum(gaps[i] for i in r[1:])
        x = rng.randrange(5, max(6, w - total - 5))
        for i in r:
            x += gaps[i] if i != r[0] else 0
            pos[i] = (x, y + rh - sizes[i][1])
            x += sizes[i][0]
        y += rh + rng.randrange(10, max(11, slack_y // (len(rows) + 1)))
    return pos


def _place_apart(rng: random.Random, sizes, size, gap: int = 14) -> list[tuple[int, int]] | None:
    """Products scattered at random, at least ``gap`` pixels apart."""
    w, h = size
    boxes: list[tuple[int, int, int, int]] = []
    for pw, ph in sizes:
        for _ in range(200):
            x, y = rng.randrange(5, w - pw - 5), rng.randrange(5, h - ph - 5)
            if all(x + pw + gap <= a or c + gap <= x or y + ph + gap <= b or d + gap <= y for a, b, c, d in boxes):
                boxes.append((x, y, x + pw, y + ph))
                break
        else:
            return None
    return [(a, b) for a, b, _, _ in boxes]


def render_scene(rng: random.Random, prods: list[tuple[str, Image.Image]], layout: str,
                 size: tuple[int, int] = SCENE_SIZE) -> tuple[Image.Image, list[SceneObject], np.ndarray]:
    """Paste cut-out products (``(product_id, RGBA image)``) on a background in ``layout``. Returns the photo,
    the products with their visible boxes, and the owner map (product number per pixel, -1: background)."""
    for scale in (1.0, 0.85, 0.7, 0.6, 0.5, 0.4):
        heights = [round(rng.uniform(130, 230) * scale) for _ in prods]
        views = [_variant(p, rng, hh) for (_, p), hh in zip(prods, heights)]
        sizes = [(v.width, v.height) for v in views]
        if layout == "apart":
            pos = _place_apart(rng, sizes, size)
        else:
            gaps = ([rng.choice([-2, -1, 0]) for _ in sizes] if layout == "touching" else
                    [-round(rng.uniform(0.08, 0.22) * min(sizes[i][0], sizes[i - 1][0])) for i in range(len(sizes))])
            pos = _place_rows(rng, sizes, gaps, size)
        if pos is not None:
            break
    else:
        raise ValueError(f"cannot lay out {len(prods)} products in {size}")
    img = background(rng, rng.choice(BACKGROUNDS), size)
    owner = np.full((size[1], size[0]), -1, np.int32)
    order = list(range(len(views)))
    rng.shuffle(order)  # which product is in front where they overlap
    for i in order:
        v, (x, y) = views[i], pos[i]
        img.paste(v.convert("RGB"), (x, y), v.getchannel("A"))
        a = np.asarray(v.getchannel("A")) > 127
        owner[y:y + v.height, x:x + v.width][a] = i
    for _ in range(rng.randrange(0, 4)):
        _price_tag(rng, img, owner >= 0)
    boxes = []
    for i in range(len(views)):
        ys, xs = np.nonzero(owner == i)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    objs = []
    for i, b in enumerate(boxes):
        near = any(j != i and b[0] <= o[2] + 2 and o[0] <= b[2] + 2 and b[1] <= o[3] + 2 and o[1] <= b[3] + 2
                   for j, o in enumerate(boxes))
        objs.append(SceneObject(prods[i][0], b, near))
    return img, objs, owner


# ---------------------------------------------------------------- the set
def generate(catalog: str | Path, *, seed: int = DEV_SEED, n: int = N_SCENES
             ) -> Iterator[tuple[Image.Image, list[SceneObject], np.ndarray, str]]:
    """``n`` scenes of the catalog's products, the same for the same seed: (photo, products, owner map, layout)."""
    cat = load_catalog(catalog)
    images: dict[str, list] = {}
    for r in cat.rows:
        images.setdefault(r.product_id, []).append(r)
    pids = sorted(images)
    if len(pids) < 6:
        raise ValueError(f"{catalog}: scenes need at least 6 products (found {len(pids)})")
    rng = random.Random(seed)
    for s in range(n):
        layout = LAYOUTS[s % len(LAYOUTS)]
        chosen = rng.sample(pids, rng.randint(2, 6))
        prods = [(p, cutout(open_image(cat.path(rng.choice(images[p]))))) for p in chosen]
        yield *render_scene(rng, prods, layout), layout


def write_scenes(catalog: str | Path, out: str | Path, *, seed: int = DEV_SEED, n: int = N_SCENES) -> Path:
    """Write ``n`` scenes of the catalog's products to ``out`` (replacing a scene set there); identical on every
    run. A folder that holds something else is never replaced."""
    out = Path(out)
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / BOXES_CSV).is_file()):
            raise ValueError(f"{out} exists and is not a scene set: give a new or empty folder")
        shutil.rmtree(out)
    (out / "scenes").mkdir(parents=True)
    rng = random.Random(seed)
    rows = []
    for s, (img, objs, _, layout) in enumerate(generate(catalog, seed=seed, n=n)):
        rel = f"scenes/s{s:03d}.jpg"
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randrange(80, 93))
        (out / rel).write_bytes(buf.getvalue())
        rows += [[rel, o.product_id, *o.box, int(o.touching), layout] for o in objs]
    with open(out / BOXES_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(rows)
    return out


def read_scenes(folder: str | Path) -> list[Scene]:
    """The scenes of a folder written by :func:`write_scenes` (or by hand: a ``boxes.csv`` of the same columns;
    ``touching`` and ``layout`` are optional)."""
    folder = Path(folder)
    path = folder / BOXES_CSV
    if not path.is_file():
        raise ValueError(f"{folder}: no {BOXES_CSV} (write a scene set: python -m core scenes --out {folder})")
    by_image: dict[str, list] = {}
    layouts: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"image", "product_id", "left", "top", "right", "bottom"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name} lacks column(s) {', '.join(sorted(missing))}")
        for row in reader:
            box = tuple(int(float(row[k])) for k in ("left", "top", "right", "bottom"))
            obj = SceneObject(row["product_id"], box, row.get("touching", "0") in ("1", "true", "True"))
            by_image.setdefault(row["image"], []).append(obj)
            layouts[row["image"]] = row.get("layout") or ""
    return [Scene(folder / im, tuple(objs), layouts[im]) for im, objs in by_image.items()]
