"""The attribute artefact of one index: its offered scorers and every catalog product's attribute scores.

Cached under ``cache_dir()/attributes/`` and tagged with the embedder spec and the index fingerprint;
a stale artefact (other index content, other embedder, other parameters) is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.config.progress import Progress
from core.config.store import new_generation, read_current, stale_key, write_json, writer_lock
from core.data.catalog import product_columns
from core.data.images import ImageError, open_image
from core.embedding import Embedder
from core.index.product_index import ProductIndex
from core.search.attributes.colour import PixelColourScorer
from core.search.attributes.heads import LinearHead, categorical_columns, pooled, train_head
from core.search.attributes.zeroshot import ZeroShotHead, validate, zero_shot_head

ARTEFACT_VERSION = 2
PARAMS = {"C": 1.0, "folds": 5, "min_per_class": 5, "colour_size": 64}


@dataclass
class Dimension:
    """One ranking dimension: a scorer for queries and the (products x values) scores of the catalog."""

    name: str
    scorer: object
    catalog: np.ndarray

    @property
    def values(self) -> list[str]:
        return self.scorer.values


@dataclass
class AttributeSet:
    products: list[str]  # row order of every catalog matrix
    dims: dict[str, Dimension]  # offered dimensions only
    reports: dict[str, dict] = field(default_factory=dict)  # every scorer tried, offered or not
    meta: dict = field(default_factory=dict)

    def score_query(self, vector: np.ndarray, image: Image.Image | None = None) -> dict[str, dict[str, float]]:
        """The query's predicted attributes: dimension -> {value: probability}. Pixel scorers need ``image``."""
        out = {}
        for name, d in self.dims.items():
            if d.scorer.input == "image":
                if image is not None:
                    out[name] = d.scorer.score(image)
            else:
                out[name] = d.scorer.score(vector)
        return out


def artefact_dir(index: ProductIndex) -> Path:
    from core.config.paths import cache_dir, slug

    key = hashlib.sha1(f"{Path(index.root).resolve()}\n{index.spec}".encode()).hexdigest()[:10]
    return cache_dir() / "attributes" / f"{slug(Path(index.root).name)}-{key}"


def _expected_meta(index: ProductIndex, embedder: Embedder) -> dict:
    return {"version": ARTEFACT_VERSION, "embedder": embedder.info(), "index_fingerprint": index.fingerprint,
            "index_root": str(Path(index.root).resolve()),
            "catalog_fingerprint": index.manifest.get("catalog_fingerprint"), "params": PARAMS}


def attributes_for(index: ProductIndex, embedder: Embedder, *, progress: Progress | bool = False,
                   rebuild: bool = False) -> AttributeSet:
    """The cached attribute artefact of ``index``, or a fresh one (trained heads, catalog scores)."""
    index.check_embedder(embedder)
    d = artefact_dir(index)
    want = _expected_meta(index, embedder)
    if not rebuild:
        got = load_attributes(d)
        if got is not None and not stale_key(got.meta, want):
            return got
    aset = build_attributes(index, embedder, progress=progress)
    aset.meta.update(want)
    save_attributes(aset, d)
    return aset


def build_attributes(index: ProductIndex, embedder: Embedder, *, progress: Progress | bool = False) -> AttributeSet:
    products = index.live_products()
    row_of = {p: i for i, p in enumerate(products)}
    ids = np.flatnonzero(index.alive)
    X = np.asarray(index.vectors[ids], np.float32)
    vec_pid = index.item_pid[ids].tolist()
    dims: dict[str, Dimension] = {}
    reports: dict[str, dict] = {}

    colour = PixelColourScorer(size=PARAMS["colour_size"])
    cat = np.zeros((len(products), len(colour.values)))
    n_img = np.zeros(len(products))
    for j, i in enumerate(ids):
        if callable(progress):
            progress(j, len(ids))
        try:
            img = open_image(index.image_path(int(i)), draft_size=2 * PARAMS["colour_size"])
        except (ImageError, OSError):
            continue
        r = row_of[vec_pid[j]]
        cat[r] += colour.score_many([img])[0]
        n_img[r] += 1
    cat /= np.maximum(n_img, 1)[:, None]
    dims[colour.name] = Dimension(colour.name, colour, cat)
    reports[colour.name] = {"source": "pixels", "offered": True}

    fields = index.products
    cols = product_columns(fields)
    for col, values in categorical_columns({p: fields[p] for p in products}, cols, PARAMS["min_per_class"]).items():
        labels = [pooled(fields[p].get(col, ""), values) for p in vec_pid]
        heads: list[LinearHead | ZeroShotHead] = [
            train_head(col, values, X, labels, vec_pid, C=PARAMS["C"], folds=PARAMS["folds"])]
        if embedder.supports_text:
            heads.append(validate(zero_shot_head(embedder, col, values), X, labels))
        for h in heads:
            reports[h.name] = {"source": h.source, "column": col, **h.report}
            if h.report.get("offered"):
                dims[h.name] = Dimension(h.name, h, _catalog_scores(h, X, vec_pid, products, fields, col))
    if callable(progress):
        progress(len(ids), len(ids))
    return AttributeSet(products, dims, reports, {})


def _catalog_scores(head, X, vec_pid, products, fields, column) -> np.ndarray:
    """A product's known label (one-hot) where the catalog has it, else the mean prediction of its images."""
    pred = head.score_many(X)
    out = np.zeros((len(products), len(head.values)))
    n = np.zeros(len(products))
    row_of = {p: i for i, p in enumerate(products)}
    for p, s in zip(vec_pid, pred):
        out[row_of[p]] += s
        n[row_of[p]] += 1
    out /= np.maximum(n, 1)[:, None]
    col = {v: i for i, v in enumerate(head.values)}
    for r, p in enumerate(products):
        v = pooled(fields[p].get(column, ""), head.values)
        if v in col:
            out[r] = 0
            out[r, col[v]] = 1
    return out


# ---------------------------------------------------------------- persistence
def save_attributes(aset: AttributeSet, root: Path) -> None:
    arrays, specs = {}, []
    for name, d in aset.dims.items():
        s = d.scorer
        spec = {"name": name, "source": s.source, "values": list(s.values), "column": getattr(s, "column", "")}
        arrays[f"{name}/catalog"] = d.catalog
        if isinstance(s, LinearHead):
            arrays[f"{name}/coef"], arrays[f"{name}/intercept"] = s.coef, s.intercept
        elif isinstance(s, ZeroShotHead):
            arrays[f"{name}/text"] = s.text
            spec["temperature"] = s.temperature
        else:
            spec["size"] = s.size
        specs.append(spec)
    with writer_lock(root), new_generation(root) as tmp:
        np.savez(tmp / "arrays.npz", **arrays)
        write_json(tmp / "manifest.json", {**aset.meta, "products": aset.products, "dims": specs,
                                           "reports": aset.reports})


def load_attributes(root: Path) -> AttributeSet | None:
    """The saved artefact in ``root``, or None when there is none (or it cannot be read)."""
    try:
        current = read_current(root)
        if current is None:
            return None
        gen, m = current
        arrays = np.load(gen / "arrays.npz")
    except (OSError, ValueError, RuntimeError):
        return None
    dims = {}
    for s in m["dims"]:
        n = s["name"]
        if s["source"] == "learned":
            sc = LinearHead(n, s["values"], arrays[f"{n}/coef"], arrays[f"{n}/intercept"], s["column"],
                            m["reports"].get(n, {}))
        elif s["source"] == "zero-shot":
            sc = ZeroShotHead(n, s["values"], arrays[f"{n}/text"], s["column"], s["temperature"],
                              m["reports"].get(n, {}))
        else:
            sc = PixelColourScorer(size=s["size"])
        dims[n] = Dimension(n, sc, arrays[f"{n}/catalog"])
    meta = {k: v for k, v in m.items() if k not in ("products", "dims", "reports")}
    return AttributeSet(m["products"], dims, m["reports"], meta)
