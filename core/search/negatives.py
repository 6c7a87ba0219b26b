"""Pictures that are no product of a given catalog, for calibrating "no close match" (:mod:`core.search.calibration`).

Two kinds, both deterministic and offline:

- **other catalogs**: the pictures and shopper photos (train splits only, never val or test) of the catalogs that
  ship with the project (:data:`BUNDLED`: the drawn sample, the real-photo demo) other than the index's own, and
  other than one that shares the index's products (the demo is cut from the same grocery dataset as an imported
  grocery catalog);
- **generated**: :data:`N_GENERATED` cheap unrelated pictures (plain colours, gradients, noise, blurred clutter,
  shelves, wood grain, stripes and checks), made here from a fixed seed.

Their vectors are cached per embedder under ``cache_dir()/negatives/`` with what produced them (embedder info and
the images' digest), so each embedder embeds them once.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.config.paths import DEMO_CATALOG, SAMPLE_CATALOG, cache_dir, slug
from core.config.progress import Progress
from core.config.store import atomic_path, new_generation, read_current, stale_key, write_json, writer_lock
from core.data.catalog import IMAGE_EXTS, load_catalog
from core.data.query_sets import HELD_OUT_FOLDERS, query_sets, read_queries
from core.data.scenes import background
from core.embedding import Embedder
from core.embedding.batch import embed_sources

VERSION = 1
N_GENERATED = 96
PER_CATALOG = 120  # pictures (and as many shopper photos) taken from each other catalog, spread over it
SIZE = 256
BUNDLED = {"sample": SAMPLE_CATALOG, "demo": DEMO_CATALOG}
KINDS = ("plain", "gradient", "noise", "clutter", "shelf", "wood", "stripes", "checks")


@dataclass
class Negatives:
    vectors: np.ndarray  # (n, dim), unit rows
    groups: list[str]  # per row: "generated" or "catalog:<name>"
    key: str  # identifies the images (and the embedder) the vectors come from

    def without(self, group: str) -> Negatives:
        keep = [i for i, g in enumerate(self.groups) if g != group]
        return Negatives(self.vectors[keep], [self.groups[i] for i in keep], f"{self.key}-{slug(group)}")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.groups:
            out[g] = out.get(g, 0) + 1
        return out


def generated_image(n: int, size: int = SIZE) -> Image.Image:
    """The ``n``-th generated unrelated picture (the same on every machine)."""
    rng = random.Random(1000 + n)
    kind = KINDS[n % len(KINDS)]
    if kind in ("plain", "gradient", "clutter", "shelf", "wood"):
        return background(rng, kind, (size, size))
    if kind == "noise":
        nrng = np.random.default_rng(n)
        arr = nrng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize((size, size), Image.NEAREST if n % 2 else Image.BILINEAR)
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))
    img = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    fg = tuple(rng.randrange(256) for _ in range(3))
    step = rng.randrange(8, 64)
    for a in range(0, size, step):
        if kind == "stripes":
            d.rectangle([a, 0, a + step // 2, size] if rng.random() < 0.5 else [0, a, size, a + step // 2], fill=fg)
        else:
            for b in range(0, size, step):
                if (a // step + b // step) % 2 == 0:
                    d.rectangle([a, b, a + step - 1, b + step - 1], fill=fg)
    return img.rotate(rng.uniform(-30, 30), resample=Image.BILINEAR, fillcolor=fg)


def _same_products(a: set[str], b: set[str]) -> bool:
    return bool(a and b) and len(a & b) >= 0.2 * min(len(a), len(b))


def _photos(root: Path) -> list[Path]:
    """The photos of a catalog's labelled query sets, but for held-out splits (val, validation, test)."""
    out: list[Path] = []
    for qs in query_sets(root):
        if qs.split in HELD_OUT_FOLDERS:
            continue
        if qs.kind == "folder":
            out += sorted(p for p in qs.path.glob("*/*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        else:
            try:
                out += [p for p, _ in read_queries(qs.path, qs.labels[0])[0]]
            except (OSError, ValueError):
                continue
    return out


def _spread(paths: list[Path], n: int) -> list[Path]:
    return paths[:: max(1, len(paths) // n)][:n]


def other_catalogs(own_root: Path, own_products: set[str]) -> dict[str, list[Path]]:
    """Image paths of each bundled catalog other than ``own_root`` and not sharing its products: up to
    :data:`PER_CATALOG` of its pictures and as many of its shopper photos (never a val, validation or test one)."""
    out = {}
    own = own_root.resolve()
    for name, root in BUNDLED.items():
        if not (root / "catalog.csv").is_file() or root.resolve() == own:
            continue
        try:
            cat = load_catalog(root)
        except (OSError, ValueError):
            continue
        if _same_products(set(cat.products), own_products):
            continue
        out[name] = _spread([cat.path(r) for r in cat.rows], PER_CATALOG) + _spread(_photos(root), PER_CATALOG)
    return out


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def _key(paths: list[Path], embedder: Embedder) -> str:
    info = json.dumps(embedder.info(), sort_keys=True)
    return hashlib.sha1(f"{VERSION}:{N_GENERATED}:{_digest(paths)}:{info}".encode()).hexdigest()[:12]


def negatives_key(own_root: Path, own_products: set[str], embedder: Embedder) -> str:
    """The key :func:`negatives_for` would return, without embedding anything."""
    return _key([p for ps in other_catalogs(own_root, own_products).values() for p in ps], embedder)


def negatives_for(own_root: Path, own_products: set[str], embedder: Embedder,
                  progress: Progress | bool = False) -> Negatives:
    """The generated pictures and the other bundled catalogs' images, embedded by ``embedder`` (cached; with
    ``progress`` while they are embedded)."""
    cats = other_catalogs(own_root, own_products)
    groups = [f"catalog:{n}" for n, ps in cats.items() for _ in ps]
    paths = [p for ps in cats.values() for p in ps]
    key = _key(paths, embedder)
    d = cache_dir() / "negatives" / f"{slug(embedder.spec)}-{key}"
    expected = {"version": VERSION, "key": key}
    try:  # a missing, stale or damaged cache is embedded again
        got = read_current(d) if d.exists() else None
        if got and not stale_key(got[1], expected):
            vec = np.load(got[0] / "vectors.npy", allow_pickle=False)
            if vec.ndim == 2 and len(vec) == len(got[1]["groups"]) and vec.shape[1] == embedder.dim:
                return Negatives(vec.astype(np.float32), list(got[1]["groups"]), key)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        pass
    sources = [generated_image(i) for i in range(N_GENERATED)] + paths
    vecs, errors = embed_sources(embedder, sources, desc="pictures of other things", progress=progress)
    groups = [g for i, g in enumerate(["generated"] * N_GENERATED + groups) if i not in errors]
    vecs = np.asarray(vecs, np.float32)
    with writer_lock(d), new_generation(d) as tmp:
        with atomic_path(tmp / "vectors.npy") as t, open(t, "wb") as f:
            np.save(f, vecs)
        write_json(tmp / "manifest.json", expected | {"groups": groups, "embedder": embedder.info()})
    return Negatives(vecs, groups, key)
