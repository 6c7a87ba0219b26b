"""Retrieval quality on labelled queries: recall@K and mAP@10, plus every query's ranked list."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from core.config.defaults import DEFAULT_RANK
from core.config.progress import Progress
from core.data.query_sets import query_sets, read_queries
from core.embedding import Embedder
from core.embedding.query import embed_queries
from core.evaluation.metrics import average_precision, first_relevant, mean, precision_at, relevance, summary
from core.explore.disagreements import embedders_to_compare
from core.index import Hit, IndexBackend
from core.search.engine import Searcher, SearchOptions


@dataclass
class QueryResult:
    image: str
    label: str
    rank: int | None  # rank of the first relevant product, None if not in the list
    top: list[tuple[str, float]]  # (product_id, score) of the ranked list
    ap10: float


@dataclass
class Evaluation:
    metrics: dict[str, float]
    queries: list[QueryResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)  # the static weights searched with ({} otherwise)
    weights_source: str = ""  # how those weights were chosen

    def failures(self, k: int = 1) -> list[QueryResult]:
        """Queries whose first relevant product is not in the top ``k``."""
        return [q for q in self.queries if q.rank is None or q.rank > k]


def evaluate(index: IndexBackend, embedder: Embedder, queries: str | Path, *, label: str = "product_id",
             k: int = 10, progress: Progress | bool = False, exclude_self: bool = False,
             rank: str = DEFAULT_RANK, weights: dict[str, float] | None = None,
             searcher: Searcher | None = None) -> Evaluation:
    """Evaluate labelled queries (``image,<label>`` CSV) through the one search entry point.

    ``rank`` and ``weights`` are those of :class:`SearchOptions` (default: the default search, static
    attribute re-ranking). ``exclude_self`` drops catalog items that are the query image itself (queries
    drawn from the catalog).
    """
    rows, skipped = read_queries(queries, label)
    searcher = searcher or Searcher(index, embedder, progress=progress)
    found, errors = embed_queries(embedder, [p for p, _ in rows], progress=progress)
    skipped += [f"{rows[i][0].name}: {e}" for i, e in errors.items()]
    ok = [(row, q) for row, q in zip(rows, found) if q is not None]
    opts = SearchOptions.make(k=k + 1 if exclude_self else k, rank=rank, weights=weights)
    hits = [searcher.search(q, opts).hits for _, q in tqdm(ok, desc="searching", disable=progress is not True)]
    vecs = np.stack([q.vector for _, q in ok]) if ok else np.zeros((0, embedder.dim), np.float32)
    ev = evaluate_vectors(index, [r for r, _ in ok], vecs, label=label, k=k, exclude_self=exclude_self,
                          skipped=skipped, hits=hits)
    ev.weights, ev.weights_source = weights_used(searcher, opts)
    return ev


def weights_used(searcher: Searcher, opts: SearchOptions) -> tuple[dict[str, float], str]:
    """The weights a search with ``opts`` ranks by, and where they come from."""
    if opts.rank == "distance":
        return {"similarity": 1.0}, "plain distance (--rank distance)"
    if opts.rank == "dynamic":
        return {}, "per query, from the trained dynamic ranker"
    if opts.weights is not None:
        return searcher.weights_for(opts), "given"
    info = searcher.weights_info
    src = {"fitted": f"fitted on {info['source']}",
           "default": f"the hand-set default, best cross-validated on {info['source']}",
           "distance": f"plain distance: the filters did not help on {info['source']}"}.get(info["chosen"], "default")
    cv = ", ".join(f"{k} {v:.3f}" for k, v in info.get("cv", {}).items())
    return searcher.weights_for(opts), src + (f"; cross-validated {info['metric']}: {cv}" if cv else "")


def evaluate_vectors(index: IndexBackend, rows: list[tuple[Path, str]], vecs: np.ndarray, *,
                     label: str = "product_id", k: int = 10, exclude_self: bool = False,
                     skipped: list[str] | None = None, hits: list[list[Hit]] | None = None) -> Evaluation:
    """Metrics for queries already embedded (``vecs[i]`` is the query ``rows[i] = (image, label)``).

    With a ``label`` other than ``product_id`` the metrics also hold ``precision@10``: the share of the top 10
    products that carry the query's label (e.g. the same category).
    """
    label_of, counts = index.labels(label), index.label_counts(label)
    results = []
    fetch = k + 1 if exclude_self else k
    hits_all = hits if hits is not None else (index.search(vecs, fetch) if len(vecs) else [])
    precisions = []
    for (path, want), hits in zip(rows, hits_all):
        if exclude_self:
            hits = [h for h in hits if Path(h.image).resolve() != path.resolve()][:k]
        rel = relevance((label_of.get(h.product_id) for h in hits), want)
        n_rel = counts.get(want, 0) - (1 if exclude_self and label != "product_id" else 0)
        results.append(QueryResult(str(path), want, first_relevant(rel), [(h.product_id, h.score) for h in hits],
                                   average_precision(rel, n_rel, k)))
        precisions.append(precision_at(rel, 10))
    extra = {"precision@10": mean(precisions)} if label != "product_id" else {}
    metrics = summary([r.rank for r in results], [r.ap10 for r in results], **extra)
    return Evaluation(metrics, results, list(skipped or []))


@dataclass
class Failure:
    """A query whose expected product was not ranked first, with what ranked above it."""

    query: str
    expected: str
    expected_image: str | None  # one catalog image of an expected product, if any is indexed
    rank: int | None  # rank of the first relevant product (None: not in the list)
    above: list[tuple[str, float, str]]  # (product_id, score, image) ranked above it (the whole list if missed)
    expected_score: float | None


def failure_details(ev: Evaluation, index: IndexBackend, label: str = "product_id", k: int = 1) -> list[Failure]:
    """Every query that missed the top ``k``: expected product, the products ranked above it and the scores."""
    label_of = index.labels(label)

    def first_image(pid: str | None) -> str | None:
        ids = index.vector_ids.get(pid, []) if pid else []
        return index.image_path(ids[0]) if ids else None

    out = []
    for q in ev.failures(k):
        stop = (q.rank - 1) if q.rank else len(q.top)
        exp_pid = q.top[q.rank - 1][0] if q.rank else next(
            (p for p, lab in label_of.items() if lab == q.label and p in index.vector_ids), None)
        out.append(Failure(q.image, q.label, first_image(exp_pid), q.rank,
                           [(p, s, first_image(p) or "") for p, s in q.top[:stop]],
                           q.top[q.rank - 1][1] if q.rank else None))
    return out


def query_files_near(catalog_dir: str | Path) -> list[Path]:
    """Query CSVs an importer wrote next to a catalog (``../queries-*.csv``) or inside it (``queries*.csv``)."""
    return [s.path for s in query_sets(catalog_dir) if s.kind == "csv"]


def before_after(spec: str, catalog_root: str | Path) -> list[str]:
    """The embedders an evaluation compares by default: before and after metric learning, i.e. the pretrained
    network and the catalog's trained head (the one it ships, or ``spec`` when it is a head; see
    :func:`core.explore.disagreements.embedders_to_compare`); ``spec`` alone when there is no head."""
    pre, head = embedders_to_compare(spec, catalog_root)
    return [pre, head] if head else [spec]
