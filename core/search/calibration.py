""""No close match": a per-index similarity threshold calibrated from the catalog itself.

For each known query (:mod:`core.search.known_queries`: the catalog's labelled queries, else augmented catalog
images) the best similarity to a relevant product is a *match* and the best similarity to any other product a
*non-match* (what the query would get if its product were not in the catalog). The threshold is the point that
best separates the two (balanced accuracy), but never above the :data:`MATCH_QUANTILE` quantile of the matches,
so that at most about 3% of genuine queries are told "no close match". Cached under
``cache_dir()/calibration/`` with what produced it; kept across adds and removes, redone when the embedder, the
query set or the size of the catalog (beyond :data:`RECALIBRATE_SHARE`) changes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config.paths import cache_dir, slug
from core.config.store import new_generation, read_current, stale_key, write_json, writer_lock
from core.embedding import Embedder
from core.index import IndexBackend
from core.search.known_queries import KnownQueries, known_queries, known_queries_key

VERSION = 1
MATCH_QUANTILE = 0.03
RECALIBRATE_SHARE = 0.5


@dataclass
class Calibration:
    threshold: float  # a best similarity below this is "no close match"
    source: str  # the queries it was calibrated on
    key: str  # identifies those queries
    label: str
    n_queries: int
    matches: dict[str, float] = field(default_factory=dict)  # quantiles of the match similarities
    non_matches: dict[str, float] = field(default_factory=dict)
    matches_below: float = 0.0  # share of genuine matches that would be told "no close match"
    non_matches_below: float = 0.0  # share of non-matches caught
    meta: dict = field(default_factory=dict)  # embedder, index root and fingerprint, products, time

    def to_dict(self) -> dict:
        return asdict(self)


def calibration_dir(index: IndexBackend) -> Path:
    key = hashlib.sha1(f"{Path(index.root).resolve()}\n{index.spec}".encode()).hexdigest()[:10]
    return cache_dir() / "calibration" / f"{slug(Path(index.root).name)}-{key}"


def match_similarities(index: IndexBackend, kq: KnownQueries) -> tuple[np.ndarray, np.ndarray]:
    """(match, non-match) best similarities per query; a self-generated query's own source image is left out
    of its matches when its product has other images."""
    ids = np.flatnonzero(index.alive)
    pids = index.item_pid[ids]
    if not kq.queries or not len(ids):
        return np.zeros(0), np.zeros(0)
    S = np.stack([q.vector for q in kq.queries]) @ np.asarray(index.vectors[ids], np.float32).T
    pos, neg = [], []
    for j, rel in enumerate(kq.relevant):
        is_rel = np.isin(pids, list(rel))
        if kq.own_image[j] is not None and is_rel.sum() > 1:
            is_rel_pos = is_rel & (ids != kq.own_image[j])
        else:
            is_rel_pos = is_rel
        if not is_rel_pos.any():
            continue
        pos.append(S[j, is_rel_pos].max())
        neg.append(S[j, ~is_rel].max() if (~is_rel).any() else np.nan)
    return np.array(pos), np.array(neg)


def threshold_from(pos: np.ndarray, neg: np.ndarray) -> float:
    """The balanced-accuracy split of matches and non-matches, capped at the :data:`MATCH_QUANTILE` of matches."""
    cap = float(np.quantile(pos, MATCH_QUANTILE))
    neg = neg[~np.isnan(neg)]
    if not len(neg):
        return cap
    cands = np.unique(np.concatenate([pos, neg]))
    bal = [(np.mean(pos >= t) + np.mean(neg < t)) / 2 for t in cands]
    best = float(cands[int(np.argmax(bal))])
    return round(min(best, cap), 4)


def _quantiles(x: np.ndarray) -> dict[str, float]:
    x = x[~np.isnan(x)]
    if not len(x):
        return {}
    return {f"q{int(q * 100):02d}": round(float(np.quantile(x, q)), 4) for q in (0.03, 0.25, 0.5, 0.75)}


def calibrate(index: IndexBackend, embedder: Embedder, kq: KnownQueries | None = None) -> Calibration:
    """Calibrate the threshold of ``index`` on its known queries (see the module doc)."""
    kq = kq or known_queries(index, embedder)
    pos, neg = match_similarities(index, kq)
    if not len(pos):
        raise ValueError(f"{index.root}: no known query could be matched to a product; cannot calibrate")
    t = threshold_from(pos, neg)
    n = neg[~np.isnan(neg)]
    return Calibration(t, kq.source, kq.key, kq.label, int(len(pos)), _quantiles(pos), _quantiles(neg),
                       round(float(np.mean(pos < t)), 4), round(float(np.mean(n < t)), 4) if len(n) else 0.0,
                       _expected(index, embedder) | {"index_fingerprint": index.fingerprint,
                                                     "n_products": len(index),
                                                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def _expected(index: IndexBackend, embedder: Embedder) -> dict:
    return {"version": VERSION, "embedder": embedder.info(), "index_root": str(Path(index.root).resolve())}


def load_calibration(root: Path) -> Calibration | None:
    try:
        current = read_current(root)
        return Calibration(**current[1]) if current else None
    except (OSError, ValueError, TypeError, RuntimeError):
        return None


def calibration_for(index: IndexBackend, embedder: Embedder, *, recalibrate: bool = False) -> Calibration:
    """The cached calibration of ``index``, or a fresh one (see the module doc for when it is redone)."""
    d = calibration_dir(index)
    got = None if recalibrate else load_calibration(d)
    if got is not None and not stale_key(got.meta, _expected(index, embedder)):
        n0 = max(1, got.meta.get("n_products", 1))
        if abs(len(index) - n0) <= RECALIBRATE_SHARE * n0 and got.key == known_queries_key(index):
            return got
    cal = calibrate(index, embedder)
    with writer_lock(d), new_generation(d) as tmp:
        write_json(tmp / "manifest.json", cal.to_dict())
    return cal
