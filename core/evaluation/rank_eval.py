"""Distance-only, static and dynamic ranking compared on the same labelled queries, in one run.

The dynamic ranker is trained on queries disjoint from the ones it is evaluated on: a separate
``train_queries`` CSV, or a deterministic half of ``queries`` (by a hash of the image path).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.data.query_sets import read_queries
from core.embedding import Embedder
from core.embedding.query import embed_queries
from core.evaluation.metrics import average_precision, first_relevant, relevance, summary
from core.index import IndexBackend
from core.search.attributes import attributes_for
from core.search.dynamic_ranker import TrainingQuery, dynamic_weights, train_weightnet
from core.search.ranking import SIMILARITY, Ranker, RankingError, default_weights, weight_vector


@dataclass
class RankingComparison:
    metrics: dict[str, dict[str, float]]  # ranking -> metric -> value
    static_weights: dict[str, float]
    mean_dynamic_weights: dict[str, float]
    training: dict
    attribute_reports: dict[str, dict]
    n_train: int
    n_test: int
    skipped: list[str] = field(default_factory=list)


def split_queries(rows: list[tuple[Path, str]], test_fraction: float = 0.5) -> tuple[list, list]:
    """Deterministic train/test split by a hash of each image's file name."""
    train, test = [], []
    for r in rows:
        h = int(hashlib.sha1(r[0].name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (test if h < test_fraction else train).append(r)
    return train, test


def _training(prepared: list, label_of: dict[str, str]) -> list[TrainingQuery]:
    """Training queries for the dynamic ranker: which candidates carry each query's label."""
    return [TrainingQuery(v, c, np.array(relevance((label_of.get(p) for p in c.products), want)))
            for want, v, c in prepared]


def prepare(ranker: Ranker, embedder: Embedder, rows, label: str, progress=False):
    """Embed queries and collect their candidates: [(want, vector, Candidates)], skipped."""
    paths = [p for p, _ in rows]
    queries, errors = embed_queries(embedder, paths, progress=progress)
    out = [(row[1], q.vector, ranker.candidates(q.vector, q.image)) for row, q in zip(rows, queries) if q]
    return out, [f"{paths[i].name}: {e}" for i, e in errors.items()]


def evaluate_ranking(index: IndexBackend, embedder: Embedder, queries: str | Path, *,
                     train_queries: str | Path | None = None, label: str = "product_id", k: int = 10,
                     static: dict[str, float] | None = None, progress=False, epochs: int = 300) -> RankingComparison:
    """recall@1/5/10 and mAP@10 of the three rankings on the test queries."""
    aset = attributes_for(index, embedder, progress=progress)
    ranker = Ranker(index, aset)
    rows, skipped = read_queries(queries, label)
    if train_queries:
        train_rows, s2 = read_queries(train_queries, label)
        skipped += s2
        test_paths = {p.resolve() for p, _ in rows}
        overlap = [p for p, _ in train_rows if p.resolve() in test_paths]
        if overlap:
            raise RankingError(f"{len(overlap)} training queries are also test queries (e.g. {overlap[0].name})")
        test_rows = rows
    else:
        train_rows, test_rows = split_queries(rows)
    if not train_rows or not test_rows:
        raise RankingError("need both training and test queries (got "
                           f"{len(train_rows)} train, {len(test_rows)} test)")
    label_of, counts = index.labels(label), index.label_counts(label)
    train, s_tr = prepare(ranker, embedder, train_rows, label, progress)
    test, s_te = prepare(ranker, embedder, test_rows, label, progress)
    skipped += s_tr + s_te

    net, training = train_weightnet(_training(train, label_of), index.dim, ranker.dims, epochs=epochs)

    static = static or default_weights(ranker.dims)
    plans = {"distance": lambda v, c: weight_vector({SIMILARITY: 1.0}, ranker.dims),
             "static": lambda v, c: weight_vector(static, ranker.dims),
             "dynamic": lambda v, c: dynamic_weights(net, v, c.query_attributes, ranker.dims)}
    metrics, dyn_w = {}, []
    for name, plan in plans.items():
        ranks, aps = [], []
        for want, v, c in test:
            w = plan(v, c)
            if name == "dynamic":
                dyn_w.append(w)
            rel = relevance((label_of.get(h.product_id) for h in ranker.rank(c, w, k)), want)
            ranks.append(first_relevant(rel))
            aps.append(average_precision(rel, counts.get(want, 0), k))
        metrics[name] = summary(ranks, aps)
    mean_dyn = dict(zip(ranker.dims, map(float, np.mean(dyn_w, 0)))) if dyn_w else {}
    return RankingComparison(metrics, dict(zip(ranker.dims, map(float, weight_vector(static, ranker.dims)))),
                             mean_dyn, training, aset.reports, len(train), len(test), skipped)


def train_dynamic(index: IndexBackend, embedder: Embedder, queries: str | Path, *, label: str = "product_id",
                  progress=False, epochs: int = 300):
    """Train the dynamic ranker on every query of ``queries`` and save it beside the attribute artefact."""
    from core.search.dynamic_ranker import model_dir, model_key, save_model

    ranker = Ranker(index, attributes_for(index, embedder, progress=progress))
    rows, skipped = read_queries(queries, label)
    if not rows:
        raise RankingError(f"no usable queries in {queries}")
    data, s2 = prepare(ranker, embedder, rows, label, progress)
    net, training = train_weightnet(_training(data, index.labels(label)), index.dim, ranker.dims, epochs=epochs)
    meta = {**model_key(ranker, embedder), "training": training, "queries": str(Path(queries).resolve()),
            "label": label}
    save_model(net, model_dir(index), meta)
    return net, meta, skipped + s2
