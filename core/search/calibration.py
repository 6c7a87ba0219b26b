""""No close match": how close a photo is to a catalog, and the threshold below which it is told so.

**Closeness** of a photo to a catalog: its best cosine similarity to any of the catalog's pictures *or* to the
photos of its products the catalog is known by (:mod:`core.search.known_queries`: its labelled query set, else
augmented catalog images). A shop photo is often far from a product's studio picture (grocery: 0.24-0.45) yet
near another shop photo of a product the catalog sells; a photo of something else is near neither.

**Threshold**, per index and embedder, from three kinds of closeness:

- *matches*: each known query against the rest (its own source image and itself left out), as a genuine photo is;
- *foreign*: pictures that are no product of this catalog (:mod:`core.search.negatives`: the other bundled catalogs
  and generated unrelated pictures);
- *non-matches* (reported): each known query with its own product's pictures and photos left out, i.e. a product the
  catalog does not sell. Where products look alike (two apples) no threshold tells these apart; they are counted,
  not fitted.

The threshold lies halfway between the :data:`FOREIGN_QUANTILE` of foreign pictures and the :data:`MATCH_QUANTILE`
of matches when the two are apart, and at the matches' quantile when they overlap: at most about 3% of genuine
photos are told "no close match", and the results are always shown. Cached under ``cache_dir()/calibration/`` with
what produced it (embedder, index fingerprint, known queries, negatives); kept across adds and removes, redone when
the embedder, the known queries, the negatives or the size of the catalog (beyond :data:`RECALIBRATE_SHARE`)
change. docs/no_close_match.md has the measurements.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config.paths import cache_dir, slug
from core.config.progress import Progress
from core.config.store import atomic_path, new_generation, read_current, stale_key, write_json, writer_lock
from core.embedding import Embedder
from core.index import IndexBackend, row_scores
from core.search.known_queries import KnownQueries, known_queries, known_queries_key
from core.search.negatives import Negatives, negatives_for, negatives_key

VERSION = 2
MATCH_QUANTILE = 0.03
FOREIGN_QUANTILE = 0.97
RECALIBRATE_SHARE = 0.5
SLICE = 20_000  # catalog pictures compared at once (memory stays bounded on a large catalog)
REFERENCE = "reference.npy"


@dataclass
class Calibration:
    threshold: float  # a closeness below this is "no close match"
    source: str  # the known queries it was calibrated on
    key: str  # identifies those queries
    label: str
    n_queries: int
    matches: dict[str, float] = field(default_factory=dict)  # quantiles of the known queries' closeness
    non_matches: dict[str, float] = field(default_factory=dict)
    matches_below: float = 0.0  # share of genuine matches that would be told "no close match"
    non_matches_below: float = 0.0  # share of missing products caught
    foreign: dict[str, float] = field(default_factory=dict)  # quantiles of the foreign pictures' closeness
    foreign_below: float = 0.0  # share of foreign pictures caught
    negatives: dict[str, int] = field(default_factory=dict)  # foreign pictures per group
    meta: dict = field(default_factory=dict)  # embedder, index root and fingerprint, negatives' key, time
    #: the known photos' vectors (closeness counts them as the catalog's pictures); stored beside the manifest
    reference: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "reference"}

    def closeness(self, vector: np.ndarray, best_similarity: float) -> float:
        """A photo's closeness, given its best similarity to the catalog's pictures (its best hit)."""
        ref = float(row_scores(self.reference, vector).max()) if len(self.reference) else -1.0
        return max(best_similarity, ref)


def calibration_dir(index: IndexBackend) -> Path:
    key = hashlib.sha1(f"{Path(index.root).resolve()}\n{index.spec}".encode()).hexdigest()[:10]
    return cache_dir() / "calibration" / f"{slug(Path(index.root).name)}-{key}"


def _best(S: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise max of ``S`` where ``mask`` (NaN where a row has nothing allowed)."""
    out = np.where(mask, S, -np.inf).max(1, initial=-np.inf)
    return np.where(np.isfinite(out), out, np.nan)


def match_similarities(index: IndexBackend, kq: KnownQueries) -> tuple[np.ndarray, np.ndarray]:
    """(match, non-match) closeness per known query (see the module doc). A query is left out when none of its
    relevant products is in the catalog. The catalog is read in slices of :data:`SLICE` pictures."""
    ids = np.flatnonzero(index.alive)
    if not kq.queries or not len(ids):
        return np.zeros(0), np.zeros(0)
    Q = np.stack([q.vector for q in kq.queries]).astype(np.float32)
    n = len(Q)
    own_of = np.array([-1 if o is None else o for o in kq.own_image])
    best_any, best_other = np.full(n, np.nan), np.full(n, np.nan)
    usable = np.zeros(n, bool)
    for s in range(0, len(ids), SLICE):
        part = ids[s:s + SLICE]
        pids = index.item_pid[part]
        S = Q @ np.asarray(index.vectors[part], np.float32).T
        rel = np.stack([np.isin(pids, list(r)) for r in kq.relevant])  # (queries, pictures of this slice)
        own = part[None, :] == own_of[:, None]
        usable |= (rel & ~own).any(1)
        best_any = np.fmax(best_any, _best(S, ~own))
        best_other = np.fmax(best_other, _best(S, ~rel & ~own))
    K = Q @ Q.T
    same = np.array([[bool(a & b) for b in kq.relevant] for a in kq.relevant])  # queries of the same products
    others = ~np.eye(n, dtype=bool)
    pos = np.fmax(best_any, _best(K, others))
    neg = np.fmax(best_other, _best(K, others & ~same))
    return pos[usable], neg[usable]


def threshold_from(pos: np.ndarray, foreign: np.ndarray) -> float:
    """Halfway between the :data:`FOREIGN_QUANTILE` of ``foreign`` and the :data:`MATCH_QUANTILE` of ``pos`` when
    those are apart, else that quantile of ``pos`` (no more than about 3% of genuine photos flagged)."""
    hi = float(np.quantile(pos, MATCH_QUANTILE))
    foreign = foreign[~np.isnan(foreign)]
    if not len(foreign):
        return round(hi, 4)
    lo = float(np.quantile(foreign, FOREIGN_QUANTILE))
    return round((lo + hi) / 2 if lo < hi else hi, 4)


def _quantiles(x: np.ndarray) -> dict[str, float]:
    x = x[~np.isnan(x)]
    if not len(x):
        return {}
    return {f"q{int(q * 100):02d}": round(float(np.quantile(x, q)), 4) for q in (0.03, 0.25, 0.5, 0.75, 0.97)}


def foreign_closeness(index: IndexBackend, reference: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Closeness of each of ``vectors`` (e.g. the foreign pictures) to the catalog of ``index``."""
    if not len(vectors):
        return np.zeros(0)
    ids = np.flatnonzero(index.alive)
    best = np.full(len(vectors), -1.0, np.float32)
    for s in range(0, len(ids), SLICE):
        best = np.maximum(best, (vectors @ np.asarray(index.vectors[ids[s:s + SLICE]], np.float32).T).max(1))
    if len(reference):
        best = np.maximum(best, (vectors @ reference.T).max(1))
    return best


def calibrate(index: IndexBackend, embedder: Embedder, kq: KnownQueries | None = None,
              negatives: Negatives | None = None, *, progress: Progress | bool = False,
              negatives_progress: Progress | bool = False) -> Calibration:
    """Calibrate "no close match" for ``index`` on its known queries and the foreign pictures (see the module doc);
    ``progress`` while the queries are embedded, ``negatives_progress`` while the foreign pictures are."""
    kq = kq or known_queries(index, embedder, progress=progress)
    negatives = negatives if negatives is not None else negatives_for(index.catalog_root, set(index.live_products()),
                                                                      embedder, negatives_progress)
    pos, neg = match_similarities(index, kq)
    if not len(pos):
        raise ValueError(f"{index.root}: no known query could be matched to a product; cannot calibrate")
    reference = np.stack([q.vector for q in kq.queries]).astype(np.float32)
    far = foreign_closeness(index, reference, negatives.vectors)
    t = threshold_from(pos, far)
    n = neg[~np.isnan(neg)]
    return Calibration(t, kq.source, kq.key, kq.label, int(len(pos)), _quantiles(pos), _quantiles(neg),
                       round(float(np.mean(pos < t)), 4), round(float(np.mean(n < t)), 4) if len(n) else 0.0,
                       _quantiles(far), round(float(np.mean(far < t)), 4) if len(far) else 0.0, negatives.counts(),
                       _expected(index, embedder, negatives.key) | {
                           "index_fingerprint": index.fingerprint, "n_products": len(index),
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                       reference)


def _expected(index: IndexBackend, embedder: Embedder, negatives: str) -> dict:
    return {"version": VERSION, "embedder": embedder.info(), "index_root": str(Path(index.root).resolve()),
            "negatives": negatives}


def load_calibration(root: Path) -> Calibration | None:
    try:
        current = read_current(root)
        if not current:
            return None
        cal = Calibration(**current[1])
        cal.reference = np.load(current[0] / REFERENCE, allow_pickle=False).astype(np.float32)
        return cal
    except (OSError, ValueError, TypeError, RuntimeError):
        return None


def save_calibration(cal: Calibration, root: Path) -> None:
    with writer_lock(root), new_generation(root) as tmp:
        with atomic_path(tmp / REFERENCE) as t, open(t, "wb") as f:
            np.save(f, cal.reference)
        write_json(tmp / "manifest.json", cal.to_dict())


def calibration_for(index: IndexBackend, embedder: Embedder, *, recalibrate: bool = False,
                    progress: Progress | bool = False, negatives_progress: Progress | bool = False) -> Calibration:
    """The cached calibration of ``index``, or a fresh one (see the module doc for when it is redone; the
    progress callbacks as :func:`calibrate`'s)."""
    d = calibration_dir(index)
    got = None if recalibrate else load_calibration(d)
    expected = _expected(index, embedder, negatives_key(index.catalog_root, set(index.live_products()), embedder))
    if got is not None and not stale_key(got.meta, expected):
        n0 = max(1, got.meta.get("n_products", 1))
        if abs(len(index) - n0) <= RECALIBRATE_SHARE * n0 and got.key == known_queries_key(index):
            return got
    cal = calibrate(index, embedder, progress=progress, negatives_progress=negatives_progress)
    save_calibration(cal, d)
    return cal
