"""Queries whose right answers are known, for fitting the ranking weights and calibrating "no close match".

A catalog's own labelled query set (see :mod:`core.data.query_sets`) when it has one: the first usable of its
train, validation and other sets (never a test set, nor a set ``held_out`` names: the one an evaluation
measures), labelled by ``product_id`` where those name indexed products, else by ``category``. Otherwise
self-generated queries: augmented copies (crop, tilt, light, mirror) of one image of each of up to
:data:`MAX_QUERIES` products, each relevant to its own product's other images or, for a product with one image,
to the other products of its category (its own image would be a match no shopper's photo gets).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from core.config.progress import Progress
from core.data.images import ImageError, open_image
from core.data.query_sets import QuerySet, load_labelled_queries, query_sets
from core.embedding import Embedder
from core.embedding.query import Query, embed_queries
from core.index import IndexBackend

MAX_QUERIES = 120
MIN_QUERIES = 20
SELF = "self-generated"
_ORDER = {"train": 0, "val": 1, "validation": 1, "": 2}
_cache: dict[tuple, list[Query | None]] = {}
_choices: dict[tuple, tuple | None] = {}
_lock = threading.Lock()


@dataclass
class KnownQueries:
    source: str  # e.g. "queries-val.csv (product_id)" or "self-generated (60 augmented catalog images)"
    key: str  # identifies the rows used (changes when the query set does)
    label: str  # product_id | category
    queries: list[Query]
    relevant: list[set[str]]  # product ids relevant to each query
    own_image: list[int | None]  # self-generated: the catalog vector each query was made from (never its match)


def _rows_of(qs: QuerySet, label: str, index: IndexBackend) -> list[tuple[Path, str]]:
    try:
        rows, _ = load_labelled_queries(qs.path, label, index.products)
    except (ValueError, OSError):
        return []
    indexed = {os.path.normpath(index.image_path(int(i))) for i in np.flatnonzero(index.alive)}
    return [(p, lab) for p, lab in rows if lab and os.path.normpath(p) not in indexed]


def _stamp(qs: QuerySet) -> tuple:
    st = qs.path.stat()
    return str(qs.path.resolve()), st.st_size, st.st_mtime_ns


def choose_rows(index: IndexBackend, held_out: tuple[Path, ...] = ()
                ) -> tuple[str, str, str, list[tuple[Path, str]], set[str]] | None:
    """(name, key, label, rows, labels known to the catalog) of the catalog's best labelled query set, or None when
    it has none usable. The rows (at most :data:`MAX_QUERIES`, spread over the file) and the key depend on the
    query set only, so adding or removing a product changes neither. Remembered per index generation."""
    skip = {p.resolve() for p in held_out}
    sets = [s for s in query_sets(index.catalog_root) if s.split != "test" and s.path.resolve() not in skip]
    memo = (str(index.root), index.fingerprint, tuple(map(_stamp, sets)))
    with _lock:
        if memo in _choices:
            return _choices[memo]
    live = set(index.live_products())
    cats = {f.get("category", "") for p, f in index.products.items() if p in live} - {""}
    found = None
    for qs in sorted(sets, key=lambda s: (s.kind != "csv", _ORDER.get(s.split, 2), s.name)):
        for label, known in (("product_id", live), ("category", cats)):
            if label not in qs.labels or found:
                continue
            rows = _rows_of(qs, label, index)
            rows = rows[:: math.ceil(len(rows) / MAX_QUERIES) or 1][:MAX_QUERIES]
            if sum(lab in known for _, lab in rows) >= MIN_QUERIES:
                path, size, mtime = _stamp(qs)
                found = qs.name, f"{path}:{size}:{mtime}:{label}", label, rows, known
    with _lock:
        while len(_choices) >= 8:
            _choices.pop(next(iter(_choices)))
        _choices[memo] = found
    return found


def known_queries_key(index: IndexBackend, held_out: tuple[Path, ...] = ()) -> str:
    """The key :func:`known_queries` would return, without embedding anything."""
    chosen = choose_rows(index, held_out)
    return chosen[1] if chosen else SELF


def _embedded(embedder: Embedder, sources: list, key: str, progress: Progress | bool = False) -> list[Query | None]:
    """Queries embedded once per process (the weight fit and the calibration share them)."""
    k = (embedder.spec, json.dumps(embedder.info(), sort_keys=True), key)
    with _lock:
        if k in _cache:
            return _cache[k]
    got, _ = embed_queries(embedder, sources, progress=progress, desc="labelled photos")
    with _lock:
        while len(_cache) >= 4:
            _cache.pop(next(iter(_cache)))
        _cache[k] = got
    return got


def augment(img: Image.Image, seed: int) -> Image.Image:
    """A shopper-like copy of a catalog image: cropped, slightly tilted, lit differently, maybe mirrored."""
    rng = np.random.default_rng(seed)
    w, h = img.size
    s = rng.uniform(0.75, 0.92)
    cw, ch = max(1, int(w * s)), max(1, int(h * s))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x, y, x + cw, y + ch)).rotate(float(rng.uniform(-8, 8)), resample=Image.BILINEAR,
                                                   fillcolor=(255, 255, 255))
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.8, 1.2)))
    out = ImageEnhance.Color(out).enhance(float(rng.uniform(0.85, 1.15)))
    return ImageOps.mirror(out) if rng.random() < 0.5 else out


def _self_generated(index: IndexBackend, embedder: Embedder, progress: Progress | bool = False) -> KnownQueries:
    products = index.live_products()
    picks = products[:: max(1, math.ceil(len(products) / MAX_QUERIES))][:MAX_QUERIES]
    by_cat: dict[str, set[str]] = {}
    for p in products:
        by_cat.setdefault(index.products.get(p, {}).get("category", ""), set()).add(p)
    images, relevant, own = [], [], []
    for n, p in enumerate(picks):
        i = index.vector_ids[p][0]
        cat = index.products.get(p, {}).get("category", "")
        if len(index.vector_ids[p]) > 1:
            rel = {p}
        elif cat and len(by_cat[cat]) > 1:
            rel = by_cat[cat]
        else:
            continue  # one image and no category: nothing a shopper's photo of it could match
        try:
            img = open_image(index.image_path(i), draft_size=2 * embedder.image_size)
        except (ImageError, OSError):
            continue
        images.append(augment(img, n))
        relevant.append(rel)
        own.append(i)
    key = hashlib.sha1(json.dumps([index.root.name, picks]).encode()).hexdigest()[:12]
    got = _embedded(embedder, images, f"{SELF}:{index.root.resolve()}:{key}", progress)
    ok = [j for j, q in enumerate(got) if q is not None]
    return KnownQueries(f"{SELF} ({len(ok)} augmented catalog images)", SELF, "product_id",
                        [got[j] for j in ok], [relevant[j] for j in ok], [own[j] for j in ok])


def known_queries(index: IndexBackend, embedder: Embedder, held_out: tuple[Path, ...] = (),
                  progress: Progress | bool = False) -> KnownQueries:
    """The catalog's labelled queries (embedded, with ``progress``), else self-generated ones; see the module
    doc."""
    chosen = choose_rows(index, held_out)
    if chosen is None:
        return _self_generated(index, embedder, progress)
    name, key, label, rows, known = chosen
    paths = [p for p, _ in rows]
    got = _embedded(embedder, paths, f"{key}:{hashlib.sha1(json.dumps(list(map(str, paths))).encode()).hexdigest()}",
                    progress)
    if label == "product_id":
        rel_of = {lab: {lab} for _, lab in rows}
    else:
        rel_of = {}
        for p, f in index.products.items():
            rel_of.setdefault(f.get("category", ""), set()).add(p)
    ok = [(q, rel_of[lab]) for (_, lab), q in zip(rows, got) if q is not None and lab in known]
    return KnownQueries(f"{name} ({label}, {len(ok)} queries)", key, label, [q for q, _ in ok], [r for _, r in ok],
                        [None] * len(ok))
