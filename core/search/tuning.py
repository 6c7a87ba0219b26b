"""Ranking that never hurts: the default static weights fitted on the catalog's known queries.

A coordinate search over the filter weights (similarity fixed at 1; each filter on :data:`GRID`, starting from
plain distance), scored by mean reciprocal rank in the top 10, cross-validated over :data:`FOLDS` folds of
the queries. Of the fit, the hand-set 0.25 per filter and plain distance, the default is the one with the best
cross-validated score, where the first two must beat plain distance by :data:`MIN_GAIN` (else every filter
weight is 0). The result is
stored in the attribute artefact (``meta["static_weights"]``), so it survives incremental updates, and fitted
again when the artefact is rebuilt or the query set changes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from core.config.progress import Progress
from core.embedding import Embedder
from core.index import IndexBackend
from core.search.attributes import AttributeSet, attributes_for
from core.search.attributes.artefact import artefact_dir, load_attributes, save_attributes
from core.search.known_queries import KnownQueries, known_queries, known_queries_key
from core.search.ranking import SIMILARITY, Ranker, default_weights

GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
FOLDS = 3
MIN_GAIN = 0.005
TOP = 10


def reciprocal_ranks(features: list[np.ndarray], relevant: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    """Per query, 1 / rank of its first relevant candidate under weights ``w`` (0 beyond :data:`TOP`); ties are
    broken by similarity, as :meth:`Ranker.rank` does."""
    out = np.zeros(len(features))
    for j, (F, rel) in enumerate(zip(features, relevant)):
        if not rel.any():
            continue
        order = np.lexsort((-F[:, 0], -(F @ w)))
        first = int(np.flatnonzero(rel[order])[0]) + 1
        out[j] = 1.0 / first if first <= TOP else 0.0
    return out


def coordinate_search(features: list[np.ndarray], relevant: list[np.ndarray], n_dims: int,
                      passes: int = 2) -> np.ndarray:
    """Weights maximising mean reciprocal rank: from plain distance, one filter at a time over :data:`GRID`."""
    w = np.zeros(n_dims)
    w[0] = 1.0
    best = reciprocal_ranks(features, relevant, w).mean() if features else 0.0
    for _ in range(passes):
        for d in range(1, n_dims):
            for g in GRID:
                trial = w.copy()
                trial[d] = g
                s = reciprocal_ranks(features, relevant, trial).mean()
                if s > best + 1e-9:
                    best, w = s, trial
    return w


def fit_static_weights(ranker: Ranker, kq: KnownQueries) -> dict:
    """The default weights and how they were chosen: ``chosen`` (fitted | default | distance) and ``cv``, the
    cross-validated scores of the three candidates."""
    dims = ranker.dims
    info = {"source": kq.source, "key": kq.key, "label": kq.label, "n_queries": len(kq.queries),
            "metric": f"mrr@{TOP}"}
    if len(dims) == 1 or not kq.queries:
        return info | {"weights": {SIMILARITY: 1.0}, "chosen": "distance", "cv": {}}
    feats, rels = [], []
    with threadpool_limits(1):  # small matrix products: more BLAS threads only cost time
        for q, rel in zip(kq.queries, kq.relevant):
            c = ranker.candidates(q.vector, q.image)
            feats.append(c.features)
            rels.append(np.array([p in rel for p in c.products]))
    n = len(feats)
    fold = np.arange(n) % FOLDS
    held = np.zeros(n)
    for f in range(FOLDS):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        w = coordinate_search([feats[i] for i in train], [rels[i] for i in train], len(dims))
        held[test] = reciprocal_ranks([feats[i] for i in test], [rels[i] for i in test], w)
    plain = np.eye(len(dims))[0]
    old = np.array([default_weights(dims)[d] for d in dims])
    cv = {"distance": float(reciprocal_ranks(feats, rels, plain).mean()),
          "default": float(reciprocal_ranks(feats, rels, old).mean()), "fitted": float(held.mean())}
    fitted = coordinate_search(feats, rels, len(dims))
    best = max(("default", "fitted"), key=lambda k: cv[k])  # on a tie the hand-set default, which fits nothing
    chosen = best if cv[best] > cv["distance"] + MIN_GAIN else "distance"
    w = {"fitted": fitted, "default": old, "distance": plain}[chosen]
    return info | {"weights": {d: float(x) for d, x in zip(dims, w)}, "chosen": chosen,
                   "cv": {k: round(v, 4) for k, v in cv.items()},
                   "fitted_weights": {d: float(x) for d, x in zip(dims, fitted)}}


def tuned_attributes(index: IndexBackend, embedder: Embedder, *, progress: Progress | bool = False,
                     queries_progress: Progress | bool = False) -> AttributeSet:
    """The attribute artefact of ``index`` with its fitted default weights (fitted and stored when missing or
    when the catalog's query set changed). When a fit is due, the known queries are embedded in a thread while
    the artefact is built (``queries_progress`` counts them, ``progress`` the artefact's pictures)."""
    key = known_queries_key(index)
    cached = load_attributes(artefact_dir(index))
    due = cached is None or (cached.meta.get("static_weights") or {}).get("key") != key
    with ThreadPoolExecutor(1) as pool:
        kq = pool.submit(known_queries, index, embedder, (), queries_progress) if due else None
        aset = attributes_for(index, embedder, progress=progress)
        got = aset.meta.get("static_weights")
        if got is None or got.get("key") != key or set(got["weights"]) != {SIMILARITY, *aset.dims}:
            kq = kq.result() if kq is not None else known_queries(index, embedder, progress=queries_progress)
            aset.meta["static_weights"] = fit_static_weights(Ranker(index, aset), kq)
            save_attributes(aset, artefact_dir(index))
    return aset
