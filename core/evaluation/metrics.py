"""Retrieval metrics over ranked lists, the one definition used by evaluation, ranking comparison, metric
learning and the benchmark.

A ranked list is given as its relevance: ``relevant[i]`` says whether the item at rank ``i + 1`` is relevant
(e.g. carries the query's label). Ranks are 1-based; ``None`` means no relevant item in the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def relevance(ranked_labels: Iterable, want) -> list[bool]:
    """Which items of a ranked list of labels equal ``want``."""
    return [lab == want for lab in ranked_labels]


def first_relevant(relevant: Sequence[bool]) -> int | None:
    """Rank of the first relevant item (1-based), ``None`` if none is."""
    rel = np.asarray(relevant, bool)
    return int(rel.argmax()) + 1 if rel.any() else None


def recall_at(ranks: Sequence[int | None], ks: Iterable[int] = RECALL_KS) -> dict[str, float]:
    """``recall@k``: share of queries whose first relevant item is in the top ``k`` (0.0 without queries)."""
    r = np.array([10**9 if x is None else x for x in ranks])
    return {f"recall@{k}": float(np.mean(r <= k)) if len(r) else 0.0 for k in ks}


def precision_at(relevant: Sequence[bool], k: int = 10) -> float:
    """``precision@k``: relevant items among the top ``k``, over ``k`` (a shorter list counts as misses)."""
    return sum(bool(x) for x in relevant[:k]) / k


def average_precision(relevant: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    """AP@k: mean of precision@i at each relevant position i <= k, over min(n_relevant, k)."""
    hits, total = 0, 0.0
    for i, rel in enumerate(relevant[:k], start=1):
        if rel:
            hits += 1
            total += hits / i
    return total / max(1, min(n_relevant, k)) if n_relevant else 0.0


def neighbour_recall(found: Sequence[Sequence], truth: Sequence[Sequence], k: int = 10) -> float:
    """Recall of an approximate search: share of the exact top ``k`` (``truth``) that it also returns in its top
    ``k`` (``found``), averaged over queries."""
    return mean([len(set(np.asarray(f[:k]).tolist()) & set(np.asarray(t[:k]).tolist())) / k
                 for f, t in zip(found, truth)])


def mean(values: Sequence[float]) -> float:
    """Mean over queries, 0.0 without queries."""
    return float(np.mean(values)) if len(values) else 0.0


def summary(ranks: Sequence[int | None], aps: Sequence[float], **extra: float) -> dict[str, float]:
    """recall@1/5/10 and map@10 of queries given their first relevant ranks and APs, ``extra`` metrics, and
    ``n_queries``."""
    return {**recall_at(ranks), "map@10": mean(aps), **extra, "n_queries": len(ranks)}
