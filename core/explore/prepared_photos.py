"""The classifier page's photos embedded ahead, for a catalog that ships labelled photo sets (the demo):
``python -m core prepare`` embeds every photo of its training and held-out sets (never a test split) as search
embeds a shopper's photo, and writes them beside the catalog (``prepared/photos-<spec>.npz``, float16) with what
produced them: the embedder (spec, dims, a digest of its weights) and each photo's content digest. The page then
seeds its vectors from them (:meth:`core.explore.photo_sets.PhotoVectors.seed`), and only those that still match:
a changed photo, or other weights, is embedded again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.query_sets import query_sets, set_photos
from core.embedding import Embedder, normalize
from core.explore.photo_sets import photo_vectors
from core.index.prepared import made_by, prepared_file, producer, save_prepared


def prepared_photos_path(catalog_root: str | Path, embedder: Embedder) -> Path:
    return prepared_file(catalog_root, embedder, "photos-")


def page_photos(catalog_root: str | Path) -> list[Path]:
    """Every photo of the catalog's labelled sets the classifier page uses (training and held out; no test
    split), each once."""
    sets = [s for s in query_sets(catalog_root) if s.split != "test"]
    return list(dict.fromkeys(p for s in sets for p in set_photos(s)))


def digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]


def write_prepared_photos(catalog_root: str | Path, embedder: Embedder,
                          progress: Progress | bool = False) -> Path | None:
    """Embed the page's photos (:func:`page_photos`) and write them with their producer; None when the catalog
    has no labelled photo set."""
    root = Path(catalog_root)
    paths = page_photos(root)
    if not paths:
        return None
    vecs, errors = photo_vectors(embedder, paths, "labelled photos", progress)
    kept = [p for i, p in enumerate(paths) if i not in errors]
    base = root.parent.resolve()
    meta = {"producer": producer(embedder), "made_by": made_by(root, embedder),
            "photos": [[p.resolve().relative_to(base).as_posix(), digest(p)] for p in kept]}
    return save_prepared(prepared_photos_path(root, embedder), meta, vectors=np.asarray(vecs, np.float16))


def prepared_photos(catalog_root: str | Path, embedder: Embedder) -> dict[Path, np.ndarray]:
    """Photo -> its prepared unit vector, for the photos that still match (same content, same producer); empty
    when there are none, or they are unreadable or were made by another embedder."""
    root = Path(catalog_root)
    path = prepared_photos_path(root, embedder)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as f:
            meta, vecs = json.loads(str(f["meta"])), np.asarray(f["vectors"], np.float32)
        photos = meta["photos"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if meta.get("producer") != producer(embedder) or vecs.shape != (len(photos), embedder.dim):
        return {}
    base = root.parent.resolve()
    out = {}
    for (rel, want), v in zip(photos, normalize(vecs)):
        p = (base / rel).resolve()
        try:
            if p.is_relative_to(base) and p.is_file() and digest(p) == want:
                out[p] = v
        except OSError:
            continue
    return out
