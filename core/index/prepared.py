"""Vectors prepared ahead for a catalog that ships with the project (the sample): ``python -m core prepare``
embeds every image with the project's own embedder and writes them beside the catalog (``prepared/<spec>.npz``,
float16), with what produced them: the embedder (spec, dims, a digest of its weights) and the catalog's
fingerprint. An index of that catalog is then built from them in about a second instead of embedding every
image, and only while they still match: a changed catalog or other weights build from the images as before."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from core.config.paths import slug
from core.config.progress import Progress
from core.config.store import atomic_path
from core.data.catalog import Catalog
from core.embedding import Embedder, normalize
from core.index.backend import embed_rows

FOLDER = "prepared"
MADE_BY = "python -m core prepare --catalog {root} --model {spec}"


def prepared_path(catalog_root: str | Path, spec: str) -> Path:
    return Path(catalog_root) / FOLDER / f"{slug(spec)}.npz"


def prepared_file(catalog_root: str | Path, embedder: Embedder, kind: str = "") -> Path:
    """``prepared/<kind><portable spec>.npz`` beside a catalog: what ``embedder`` produced for it."""
    return Path(catalog_root) / FOLDER / f"{kind}{slug(portable_spec(embedder))}.npz"


def made_by(catalog_root: str | Path, embedder: Embedder) -> str:
    """The command that writes a catalog's prepared files, as recorded in each."""
    return MADE_BY.format(root=Path(catalog_root).name, spec=portable_spec(embedder))


def save_prepared(path: Path, meta: dict, **arrays: np.ndarray) -> Path:
    """Write ``arrays`` and ``meta`` (as JSON) to ``path``, a compressed npz, in one step (readers see the old
    file or the new)."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta, default=float)), **arrays)
    return path


def portable_spec(embedder: Embedder) -> str:
    """The embedder's spec, with a trained head named by its base and weights digest instead of its folder: the
    same on every clone, wherever the catalog (and the head it ships beside itself) lies."""
    info = embedder.info()
    if info.get("base") and info.get("weights"):
        return f"{info['base']}+head-{info['weights']}"
    return embedder.spec


def producer(embedder: Embedder) -> dict:
    """What produced a vector, as precisely as this machine can tell: the embedder's info (its spec made
    portable) and a digest of its weights file (where it has one)."""
    out = {**embedder.info(), "spec": portable_spec(embedder)}
    weights = getattr(embedder, "weights", None)
    if isinstance(weights, str) and Path(weights).is_file():
        out["weights_sha256"] = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return out


def write_prepared(catalog: Catalog, embedder: Embedder, progress: Progress | bool = False) -> Path:
    """Embed every row of ``catalog`` and write the vectors with their producer; every image must embed."""
    vecs, items, report = embed_rows(catalog, catalog.rows, embedder, progress)
    if len(items) != len(catalog.rows):
        raise ValueError(f"{len(catalog.rows) - len(items)} image(s) could not be embedded: "
                         f"{'; '.join(report.skipped[:3])}")
    meta = {"producer": producer(embedder), "catalog_fingerprint": catalog.fingerprint(),
            "images": [r.image for r in catalog.rows],
            "made_by": made_by(catalog.root, embedder)}
    return save_prepared(prepared_file(catalog.root, embedder), meta, vectors=np.asarray(vecs, np.float16))


def prepared_vectors(catalog: Catalog, embedder: Embedder) -> np.ndarray | None:
    """The prepared unit vectors of every catalog row, or None when there are none or they are stale (another
    embedder or weights, a changed catalog) or unreadable."""
    path = prepared_file(catalog.root, embedder)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta, vecs = json.loads(str(f["meta"])), np.asarray(f["vectors"], np.float32)
    except (OSError, ValueError, KeyError):
        return None
    if (meta.get("producer") != producer(embedder) or meta.get("catalog_fingerprint") != catalog.fingerprint()
            or meta.get("images") != [r.image for r in catalog.rows] or vecs.shape != (len(catalog.rows),
                                                                                      embedder.dim)):
        return None
    return normalize(vecs)
