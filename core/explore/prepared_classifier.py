"""The classifier page's classifiers fitted ahead, for a catalog that ships with the project (the sample, the
demo): ``python -m core prepare`` (``python -m core demo``) opens the page's default comparison as the page does
(the catalog's training photos, else its own pictures; the labels tried until one has a case) and writes each
fitted classifier beside the catalog (``prepared/classifier-<spec>.npz``) with what produced it: the embedder
(spec, dims, a digest of its weights), the catalog's fingerprint, the training photos' content digests, and a
digest of the classifier's exact inputs (label, training vectors, their labels, its settings). The page uses a
prepared classifier only when its inputs digest is that of the fit it would make, so what it shows is the same;
other photos, vectors or weights are fitted again, as before."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.search.attributes.heads import LinearHead

FORMAT = 1


def inputs_key(label: str, X: np.ndarray, y: list[str], C: float, max_iter: int) -> str:
    """A digest of everything a classifier's fit depends on (no cross-validation: the groups play no part)."""
    h = hashlib.sha256(json.dumps([FORMAT, label, C, max_iter, list(np.shape(X)), list(y)]).encode())
    h.update(np.ascontiguousarray(X, np.float32).tobytes())
    return h.hexdigest()[:32]


class Classifiers:
    """Fitted classifiers by :func:`inputs_key`: those prepared ahead, and every one fitted since (:meth:`put`)."""

    def __init__(self, heads: dict[str, LinearHead] | None = None):
        self.heads = dict(heads or {})
        self.fitted: list[str] = []  # keys fitted here (not prepared), in order

    def get(self, key: str) -> LinearHead | None:
        return self.heads.get(key)

    def put(self, key: str, head: LinearHead) -> None:
        self.heads[key] = head
        self.fitted.append(key)


def prepared_classifier_path(catalog_root: str | Path, embedder) -> Path:
    from core.index.prepared import prepared_file

    return prepared_file(catalog_root, embedder, "classifier-")


def prepared_classifiers(catalog_root: str | Path, embedder) -> Classifiers:
    """The classifiers prepared beside the catalog by ``embedder`` (same spec and weights); none when the file is
    missing, unreadable or made by another embedder."""
    from core.index.prepared import producer

    path = prepared_classifier_path(catalog_root, embedder)
    if not path.is_file():
        return Classifiers()
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("format") != FORMAT or meta.get("producer") != producer(embedder):
                return Classifiers()
            heads = {c["key"]: LinearHead(c["name"], c["values"], np.asarray(f[f"coef{i}"]),
                                          np.asarray(f[f"intercept{i}"]), c["column"], c["report"])
                     for i, c in enumerate(meta["classifiers"])}
    except (OSError, ValueError, KeyError, TypeError):
        return Classifiers()
    return Classifiers(heads)


def write_prepared_classifiers(catalog_root: str | Path, embedder, progress: Progress | bool = False) -> Path | None:
    """Fit the classifiers the page opens with (its defaults, as :func:`core.explore.disagreements.compare` fits
    them) and write them with their producer; None when the catalog has no labelled photos to test on."""
    from core.data.catalog import load_catalog
    from core.data.query_sets import set_photos
    from core.explore.disagreements import compare, default_label_order, first_with_cases
    from core.explore.photo_sets import PhotoVectors, held_out_sets, training_sets
    from core.explore.prepared_photos import digest, prepared_photos
    from core.index import build_index
    from core.index.prepared import made_by, prepared_vectors, producer, save_prepared

    root = Path(catalog_root)
    held, train = held_out_sets(root), training_sets(root)
    if not held:
        return None
    catalog = load_catalog(root)
    vectors = PhotoVectors()
    vectors.seed(embedder, prepared_photos(root, embedder))
    made = Classifiers()
    with tempfile.TemporaryDirectory(prefix="vps-classifier-") as tmp:  # the index the app builds, as it does
        ready = prepared_vectors(catalog, embedder)
        index, _ = build_index(catalog, embedder, Path(tmp) / "index", vectors=ready,
                               progress=False if ready is not None else progress)
        train_path = train[0].path if train else None
        first_with_cases(default_label_order(index), lambda lab: compare(
            index, embedder, held[0].path, lab, train=train_path, vectors=vectors, progress=progress,
            classifiers=made))
    base = root.parent.resolve()
    photos = [] if not train else [[p.resolve().relative_to(base).as_posix(), digest(p)]
                                   for p in dict.fromkeys(set_photos(train[0]))]
    meta = {"format": FORMAT, "producer": producer(embedder), "catalog_fingerprint": catalog.fingerprint(),
            "trained_on": train[0].path.name if train else "catalog pictures", "training_photos": photos,
            "made_by": made_by(root, embedder),
            "classifiers": [{"key": k, "name": h.name, "column": h.column, "values": h.values, "report": h.report}
                            for k, h in ((k, made.heads[k]) for k in made.fitted)]}
    arrays = {}
    for i, k in enumerate(made.fitted):
        arrays[f"coef{i}"], arrays[f"intercept{i}"] = made.heads[k].coef, made.heads[k].intercept
    return save_prepared(prepared_classifier_path(root, embedder), meta, **arrays)

