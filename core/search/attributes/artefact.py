"""The attribute artefact of one index: its offered scorers and every catalog product's attribute scores.

Cached under ``cache_dir()/attributes/`` and tagged with the embedder spec and the index fingerprint. An
artefact of other parameters or another embedder is rebuilt, never used. After products are added or removed
(the same index folder, another fingerprint), the artefact is updated instead of retrained: removed products'
rows are dropped and new or changed products are scored by the existing heads and the pixel-colour scorer, in
well under a second for a few products. :attr:`AttributeSet.needs_retraining` says when so much has changed
that training the heads again (``attributes_for(..., rebuild=True)``)
is worth it; a search never waits for that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from core.config.progress import Progress
from core.config.store import new_generation, read_current, stale_key, write_json, writer_lock
from core.data.catalog import product_columns
from core.data.images import ImageError, open_image
from core.embedding import Embedder
from core.index import IndexBackend
from core.index.pca import fit_sample
from core.search.attributes.colour import PixelColourScorer
from core.search.attributes.heads import LinearHead, categorical_columns, pooled, train_head
from core.search.attributes.zeroshot import ZeroShotHead, validate, zero_shot_head

ARTEFACT_VERSION = 2
#: head_dim: heads are trained on the embeddings' top principal components (as fast as 8x fewer dimensions,
#: cross-validated as accurate on the sample catalog) and stored as linear maps of the full embedding
PARAMS = {"C": 1.0, "folds": 3, "min_per_class": 5, "colour_size": 64, "head_dim": 128}
#: share of the trained products changed (added, removed, edited) after which the heads are worth retraining
RETRAIN_SHARE = 0.2
#: beyond this share the catalog is another one: the artefact is rebuilt rather than updated
REBUILD_SHARE = 0.5


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

    @property
    def changed_since_training(self) -> int:
        """Products added, removed or edited since the heads were trained."""
        return int(self.meta.get("changed_since_training", 0))

    @property
    def needs_retraining(self) -> bool:
        """True when more than :data:`RETRAIN_SHARE` of the trained catalog changed since training."""
        return self.changed_since_training > RETRAIN_SHARE * max(1, self.meta.get("trained_products", 1))

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


def artefact_dir(index: IndexBackend) -> Path:
    from core.config.paths import cache_dir, slug

    key = hashlib.sha1(f"{Path(index.root).resolve()}\n{index.spec}".encode()).hexdigest()[:10]
    return cache_dir() / "attributes" / f"{slug(Path(index.root).name)}-{key}"


def _expected_meta(index: IndexBackend, embedder: Embedder) -> dict:
    return {"version": ARTEFACT_VERSION, "embedder": embedder.info(), "index_fingerprint": index.fingerprint,
            "index_root": str(Path(index.root).resolve()),
            "catalog_fingerprint": index.manifest.get("catalog_fingerprint"), "params": PARAMS}


def _training_key(meta: dict) -> dict:
    """What trained heads depend on: everything the artefact is tagged with but the index content."""
    return {k: v for k, v in meta.items() if k not in ("index_fingerprint", "catalog_fingerprint")}


def attributes_for(index: IndexBackend, embedder: Embedder, *, progress: Progress | bool = False,
                   rebuild: bool = False) -> AttributeSet:
    """The cached attribute artefact of ``index``; updated in place of retraining after adds and removes (see
    the module doc); built (trained heads, catalog scores) when there is none or ``rebuild``."""
    index.check_embedder(embedder)
    d = artefact_dir(index)
    want = _expected_meta(index, embedder)
    got = None if rebuild else load_attributes(d)
    if got is not None and not stale_key(got.meta, want):
        return got
    if got is not None and not stale_key(got.meta, _training_key(want)):
        aset = update_attributes(got, index)
        if aset is not None:
            aset.meta.update(want)
            save_attributes(aset, d)
            return aset
    aset = build_attributes(index, embedder, progress=progress)
    aset.meta.update(want)
    save_attributes(aset, d)
    return aset


def product_keys(index: IndexBackend, products: list[str]) -> list[str]:
    """Per product, a digest of its fields and live images: what its artefact row was computed from."""
    images: dict[str, list[str]] = {}
    for i in np.flatnonzero(index.alive):
        images.setdefault(index.item_pid[i], []).append(index.items[i]["image"])
    return [hashlib.sha1(json.dumps([index.products.get(p, {}), sorted(images.get(p, []))],
                                    sort_keys=True).encode()).hexdigest()[:12] for p in products]


def update_attributes(aset: AttributeSet, index: IndexBackend) -> AttributeSet | None:
    """``aset`` brought up to the content of ``index`` with its trained scorers: removed products dropped, new or
    changed ones scored (pixel colour from their images, heads from their vectors). None when more than
    :data:`REBUILD_SHARE` of the trained catalog changed, or ``aset`` does not record its products' keys."""
    old_keys = aset.meta.get("product_keys")
    if old_keys is None or len(old_keys) != len(aset.products):
        return None
    products = index.live_products()
    keys = product_keys(index, products)
    old = dict(zip(aset.products, old_keys))
    todo = [p for p, k in zip(products, keys) if old.get(p) != k]
    removed = len(set(old) - set(products))
    changed = aset.changed_since_training + len(todo) + removed
    if changed > REBUILD_SHARE * max(1, aset.meta.get("trained_products", len(aset.products))):
        return None
    old_row = {p: i for i, p in enumerate(aset.products)}
    new_row = {p: i for i, p in enumerate(products)}
    redo = set(todo)
    keep = [(r, old_row[p]) for r, p in enumerate(products) if p in old_row and p not in redo]
    fresh = _score_products(index, todo, aset.dims)
    dims = {}
    for name, d in aset.dims.items():
        cat = np.zeros((len(products), d.catalog.shape[1]))
        if keep:
            new_rows, old_rows = map(list, zip(*keep))
            cat[new_rows] = d.catalog[old_rows]
        cat[[new_row[p] for p in todo]] = fresh[name]
        dims[name] = Dimension(name, d.scorer, cat)
    meta = {**aset.meta, "product_keys": keys, "changed_since_training": changed}
    return AttributeSet(products, dims, aset.reports, meta)


def _score_products(index: IndexBackend, products: list[str], dims: dict[str, Dimension]) -> dict[str, np.ndarray]:
    """Catalog rows of ``products`` for every dimension, from their live images and vectors."""
    if not products:
        return {n: np.zeros((0, len(d.values))) for n, d in dims.items()}
    ids = [i for p in products for i in index.vector_ids.get(p, [])]
    vec_pid = [index.item_pid[i] for i in ids]
    X = np.asarray(index.vectors[ids], np.float32)
    out = {}
    for name, d in dims.items():
        if d.scorer.input == "image":
            out[name] = _colour_scores(index, ids, vec_pid, products, d.scorer)
        else:
            out[name] = _catalog_scores(d.scorer, X, vec_pid, products, index.products, d.scorer.column)
    return out


def _colour_scores(index: IndexBackend, ids, vec_pid: list[str], products: list[str], colour: PixelColourScorer,
                   progress: Progress | bool = False) -> np.ndarray:
    """Mean pixel-colour scores of each product's readable images (zeros where none can be read)."""
    row_of = {p: i for i, p in enumerate(products)}
    cat = np.zeros((len(products), len(colour.values)))
    n_img = np.zeros(len(products))
    for j, i in enumerate(ids):
        if callable(progress):
            progress(j, len(ids))
        try:
            img = open_image(index.image_path(int(i)), draft_size=2 * colour.size)
        except (ImageError, OSError):
            continue
        r = row_of[vec_pid[j]]
        cat[r] += colour.score_many([img])[0]
        n_img[r] += 1
    return cat / np.maximum(n_img, 1)[:, None]


def build_attributes(index: IndexBackend, embedder: Embedder, *, progress: Progress | bool = False) -> AttributeSet:
    """Score every catalog product's pixel colour and train a head per categorical column. BLAS runs on one
    thread here: these small matrix products only lose time (several times over on a busy machine) to more."""
    with threadpool_limits(1):
        return _build(index, embedder, progress)


def _build(index: IndexBackend, embedder: Embedder, progress: Progress | bool) -> AttributeSet:
    products = index.live_products()
    ids = np.flatnonzero(index.alive)
    X = np.asarray(index.vectors[ids], np.float32)
    vec_pid = index.item_pid[ids].tolist()
    dims: dict[str, Dimension] = {}
    reports: dict[str, dict] = {}

    colour = PixelColourScorer(size=PARAMS["colour_size"])
    dims[colour.name] = Dimension(colour.name, colour, _colour_scores(index, ids, vec_pid, products, colour, progress))
    reports[colour.name] = {"source": "pixels", "offered": True}

    fields = index.products
    columns = categorical_columns({p: fields[p] for p in products}, product_columns(fields), PARAMS["min_per_class"])
    Z, mu, P = _reduce(X, PARAMS["head_dim"]) if columns else (X, None, None)
    for col, values in columns.items():
        labels = [pooled(fields[p].get(col, ""), values) for p in vec_pid]
        heads: list[LinearHead | ZeroShotHead] = [
            _full_space(train_head(col, values, Z, labels, vec_pid, C=PARAMS["C"], folds=PARAMS["folds"]), mu, P)]
        if embedder.supports_text:
            heads.append(validate(zero_shot_head(embedder, col, values), X, labels))
        for h in heads:
            reports[h.name] = {"source": h.source, "column": col, **h.report}
            if h.report.get("offered"):
                dims[h.name] = Dimension(h.name, h, _catalog_scores(h, X, vec_pid, products, fields, col))
    if callable(progress):
        progress(len(ids), len(ids))
    meta = {"product_keys": product_keys(index, products), "trained_products": len(products),
            "trained_fingerprint": index.fingerprint, "changed_since_training": 0}
    return AttributeSet(products, dims, reports, meta)


def _reduce(X: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Z, mu, P)`` with ``Z = (X - mu) @ P.T``: the top ``dim`` principal components, scaled to unit mean norm."""
    mu, comps = fit_sample(X, dim)
    z = (X - mu) @ comps.T
    P = comps / max(float(np.linalg.norm(z, axis=1).mean()), 1e-12)
    return (X - mu) @ P.T, mu, P


def _full_space(head: LinearHead, mu: np.ndarray, P: np.ndarray) -> LinearHead:
    """The same head as a linear map of the full embedding: ``(x - mu) @ P.T @ W.T + b = x @ (W P).T + b'``."""
    coef = head.coef.astype(np.float64) @ P
    head.intercept = (head.intercept - coef @ mu).astype(np.float32)
    head.coef = coef.astype(np.float32)
    return head


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
