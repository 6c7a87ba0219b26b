"""The "no close match" notice measured: ``python -m core evaluate-no-match``.

On an index, two sets of photos: the catalog's own (photos of products it sells, e.g. a validation split), which
should not be flagged, and foreign ones (another shop's products), which should. The calibration
(:mod:`core.search.calibration`) is redone for the measurement without the measured catalog photos (their query set
is held out of the known queries), optionally without some of the bundled catalogs among its foreign pictures, and
each photo goes through the search as a shopper's would (:meth:`~core.search.engine.Searcher.search`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.catalog import IMAGE_EXTS, inside_root
from core.data.csv_records import records
from core.embedding import Embedder
from core.embedding.query import embed_queries
from core.index import IndexBackend
from core.search.calibration import Calibration, calibrate
from core.search.engine import Searcher, SearchOptions
from core.search.known_queries import known_queries
from core.search.negatives import BUNDLED, negatives_for


@dataclass
class NoMatchRates:
    threshold: float
    catalog_not_flagged: float  # share of the catalog's photos searched without the notice
    foreign_flagged: float  # share of the foreign photos told "no close match"
    n_catalog: int
    n_foreign: int
    calibrated_on: str  # the known queries
    negatives: dict[str, int]  # foreign pictures of the calibration, per group
    closeness: dict[str, list[float]] = field(default_factory=dict)  # catalog / foreign: 5%, 50%, 95% quantiles
    skipped: list[str] = field(default_factory=list)


def photo_paths(source: str | Path) -> tuple[list[Path], list[str]]:
    """The photos of a query CSV (its ``image`` column, relative to the CSV's folder) or of a folder (every image
    below it), and the rows skipped."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file()), []
    if not source.is_file():
        raise ValueError(f"{source}: no such CSV or folder")
    recs = records(source.read_bytes().decode("utf-8-sig"))
    head = next(recs, None)
    if head is None or head.cells is None or "image" not in head.cells:
        raise ValueError(f"{source.name} needs an 'image' column")
    col = head.cells.index("image")
    out, skipped = [], []
    for rec in recs:
        image = rec.cells[col].strip() if rec.cells and col < len(rec.cells) else ""
        p, reason = inside_root(source.parent, image) if image else (None, "no image")
        if reason or p is None:
            skipped.append(f"{source.name} line {rec.first}: {reason or rec.error}")
        else:
            out.append(p)
    return out, skipped


def _flags(searcher: Searcher, paths: list[Path], progress, desc: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    queries, errors = embed_queries(searcher.embedder, paths, progress=progress, desc=desc)
    flags, close = [], []
    for q in queries:
        if q is not None:
            res = searcher.search(q, SearchOptions(k=1, rank="distance"))
            flags.append(res.no_close_match)
            close.append(res.closeness)
    return np.array(flags, bool), np.array(close, float), [f"{paths[i]}: {e}" for i, e in errors.items()]


def evaluate_no_match(index: IndexBackend, embedder: Embedder, catalog_photos: str | Path,
                      foreign_photos: list[str | Path], *, leave_out: tuple[str, ...] = (),
                      progress: Progress | bool = False) -> NoMatchRates:
    """Rates of the notice on ``catalog_photos`` (not flagged) and ``foreign_photos`` (flagged); see the module doc.
    ``leave_out`` names bundled catalogs (:data:`~core.search.negatives.BUNDLED`) kept out of the foreign
    pictures."""
    unknown = sorted(set(leave_out) - set(BUNDLED))
    if unknown:
        raise ValueError(f"unknown bundled catalog {unknown[0]!r}; choose from {', '.join(BUNDLED)}")
    own, skipped = photo_paths(catalog_photos)
    foreign: list[Path] = []
    for f in foreign_photos:
        got, sk = photo_paths(f)
        foreign += got
        skipped += sk
    if not own or not foreign:
        raise ValueError("no usable " + ("catalog" if not own else "foreign") + " photos to measure")
    kq = known_queries(index, embedder, held_out=(Path(catalog_photos),))
    held = {p.resolve() for p in own}
    leak = [q for q in kq.queries if q.name and Path(q.name).resolve() in held]
    if leak:
        raise ValueError(f"{leak[0].name} is both a known query of the calibration and a measured photo")
    neg = negatives_for(index.catalog_root, set(index.live_products()), embedder)
    for name in leave_out:
        neg = neg.without(f"catalog:{name}")
    cal: Calibration = calibrate(index, embedder, kq, neg)
    searcher = Searcher(index, embedder)
    searcher._calibration = cal  # this measurement's calibration, not the cached one
    f_own, c_own, e_own = _flags(searcher, own, progress, "catalog photos")
    f_for, c_for, e_for = _flags(searcher, foreign, progress, "foreign photos")
    q = (0.05, 0.5, 0.95)
    return NoMatchRates(cal.threshold, round(float(np.mean(~f_own)), 4), round(float(np.mean(f_for)), 4),
                        len(f_own), len(f_for), cal.source, cal.negatives,
                        {"catalog": np.quantile(c_own, q).round(3).tolist(),
                         "foreign": np.quantile(c_for, q).round(3).tolist()},
                        skipped + e_own + e_for)
