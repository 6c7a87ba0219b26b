"""Region search on a scene set with known boxes (:mod:`core.data.scenes`): are the products found (box recall
at IoU 0.5, mean IoU), is each found box's product ranked first (top-1/top-5), and how long a photo takes."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from core.config.progress import Progress
from core.data.scenes import Scene, read_scenes
from core.embedding.query import embed_query
from core.search.engine import SearchOptions
from core.search.regions import Box, RegionSearcher

IOU_FOUND = 0.5


def iou(a: Box, b: Box) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[Box], found: list[Box], threshold: float = IOU_FOUND) -> list[int | None]:
    """For each true box, the found box it is paired with (greedy by IoU, one to one, IoU >= ``threshold``)."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    out: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for v, i, j in pairs:
        if v < threshold:
            break
        if out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out


@dataclass
class ProductOutcome:
    image: str
    product_id: str
    touching: bool
    best_iou: float
    found: bool
    rank: int | None  # of the true product in the paired box's hits (None: not found, or not in the hits)


@dataclass
class RegionEvaluation:
    metrics: dict[str, float]
    products: list[ProductOutcome] = field(default_factory=list)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _mean(xs) -> float:
    xs = list(xs)
    return float(np.mean(xs)) if xs else 0.0


def evaluate_regions(rs: RegionSearcher, scenes: str | Path | list[Scene], *, k: int = 5,
                     rank: str | None = None, oracle: bool = False,
                     progress: Progress | bool = False) -> RegionEvaluation:
    """Find and search the products of every scene (``oracle``: search the true boxes instead, which measures
    retrieval alone). ``rank`` is the search's ranking (default: the default search's)."""
    items = read_scenes(scenes) if not isinstance(scenes, list) else scenes
    opts = SearchOptions.make(k=k, **({"rank": rank} if rank else {}))
    if items:  # warm-up outside the timing: the ranker's artefact, the ONNX sessions
        rs.search(items[0].image, opts)
    outcomes, n_boxes, matched, times, stages = [], 0, 0, [], {}
    cpu0 = _cpu()
    for i, sc in enumerate(tqdm(items, desc="scenes", disable=progress is not True)):
        truth = [o.box for o in sc.objects]
        t0 = time.perf_counter()
        res = rs.search(sc.image, opts, boxes=[(b, 1.0) for b in truth] if oracle else None)
        times.append(time.perf_counter() - t0)
        for s, v in res.seconds.items():
            stages.setdefault(s, []).append(v)
        found = [r.box for r in res.regions]
        n_boxes += len(found)
        pair = match(truth, found)
        matched += sum(j is not None for j in pair)
        for o, j in zip(sc.objects, pair):
            ranks = [h.rank for h in res.regions[j].hits if h.product_id == o.product_id] if j is not None else []
            outcomes.append(ProductOutcome(sc.image.name, o.product_id, o.touching,
                                           max((iou(o.box, f) for f in found), default=0.0), j is not None,
                                           ranks[0] if ranks else None))
        if callable(progress):
            progress(i + 1, len(items))
    got = [o for o in outcomes if o.found]
    touching = [o for o in outcomes if o.touching]
    m = {"photos": len(items), "products": len(outcomes), "touching": len(touching),
         "box_recall@0.5": _mean(o.found for o in outcomes),
         "box_recall_touching": _mean(o.found for o in touching),
         "mean_iou": _mean(o.best_iou for o in outcomes), "mean_iou_found": _mean(o.best_iou for o in got),
         "boxes_per_photo": n_boxes / max(1, len(items)), "box_precision": matched / max(1, n_boxes),
         "top1_per_found_box": _mean(o.rank == 1 for o in got),
         f"top{k}_per_found_box": _mean(o.rank is not None for o in got),
         "top1_touching": _mean(o.rank == 1 for o in got if o.touching),
         "seconds_per_photo": _mean(times), "seconds_p90": float(np.percentile(times, 90)) if times else 0.0,
         "cpu_seconds_per_photo": (_cpu() - cpu0) / max(1, len(items))}
    m |= {f"seconds_{s}": _mean(v) for s, v in stages.items() if s != "total"}
    return RegionEvaluation(m, outcomes)


def evaluate_region_photos(rs: RegionSearcher, photos: list[tuple[Path, str]], *, k: int = 5,
                           rank: str | None = None, progress: Progress | bool = False) -> dict[str, float]:
    """Region search on real photos labelled with one product each but without boxes (a ``queries.csv``): is
    the labelled product the top hit of the first (most product-like) box, of some box, or among the first
    ``k`` hits of some box; and, for comparison, the top hit of the whole photo's search."""
    opts = SearchOptions.make(k=k, **({"rank": rank} if rank else {}))
    first = anyone = any_k = whole = n_boxes = none = 0
    times = []
    for i, (path, label) in enumerate(tqdm(photos, desc="photos", disable=progress is not True)):
        t0 = time.perf_counter()
        res = rs.search(path, opts)
        times.append(time.perf_counter() - t0)
        tops = [[h.product_id for h in r.hits] for r in res.regions]
        n_boxes += len(tops)
        none += not tops
        first += bool(tops) and tops[0][:1] == [label]
        anyone += any(t[:1] == [label] for t in tops)
        any_k += any(label in t for t in tops)
        hits = rs.searcher.search(embed_query(rs.searcher.embedder, path), opts).hits
        whole += bool(hits) and hits[0].product_id == label
        if callable(progress):
            progress(i + 1, len(photos))
    n = max(1, len(photos))
    return {"photos": len(photos), "boxes_per_photo": n_boxes / n, "no_box": none / n,
            "first_box_top1": first / n, "any_box_top1": anyone / n, f"any_box_top{k}": any_k / n,
            "whole_photo_top1": whole / n, "seconds_per_photo": _mean(times)}
