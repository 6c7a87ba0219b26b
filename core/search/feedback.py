"""Relevance feedback: Rocchio moves the query toward liked products and away from disliked ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from core.embedding import normalize
from core.index import Hit, IndexBackend

ALPHA, BETA, GAMMA = 1.0, 0.75, 0.25


def product_vectors(index: IndexBackend, product_ids: Iterable[str]) -> np.ndarray:
    """One unit vector per product (the normalised mean of its live image vectors); unknown ids are skipped."""
    wanted = list(dict.fromkeys(product_ids))
    out = []
    for pid in wanted:
        ids = index.vector_ids.get(pid)
        if ids:
            out.append(normalize(np.asarray(index.vectors[ids], np.float32).mean(0)))
    return np.stack(out) if out else np.zeros((0, index.dim), np.float32)


def rocchio(query: np.ndarray, liked: np.ndarray, disliked: np.ndarray, *, alpha: float = ALPHA,
            beta: float = BETA, gamma: float = GAMMA) -> np.ndarray:
    """``alpha*q + beta*mean(liked) - gamma*mean(disliked)``, renormalised to unit length."""
    q = alpha * np.asarray(query, np.float32)
    if len(liked):
        q = q + beta * np.asarray(liked, np.float32).mean(0)
    if len(disliked):
        q = q - gamma * np.asarray(disliked, np.float32).mean(0)
    if not np.isfinite(q).all() or np.linalg.norm(q) < 1e-9:
        return normalize(np.asarray(query, np.float32))
    return normalize(q)


def refine(index: IndexBackend, query: np.ndarray, votes: Mapping[str, int], **weights: float) -> np.ndarray:
    """Apply feedback ``votes`` (product_id -> +1 liked / -1 disliked) to ``query``."""
    liked = product_vectors(index, [p for p, v in votes.items() if v > 0])
    disliked = product_vectors(index, [p for p, v in votes.items() if v < 0])
    return rocchio(query, liked, disliked, **weights)


@dataclass
class Arranged:
    """Results as feedback shows them: liked products pinned first, disliked ones hidden (to undo)."""

    pinned: list[Hit]
    rest: list[Hit]
    hidden: list[str]
    missing: list[str]  # liked products not among the hits searched

    @property
    def hits(self) -> list[Hit]:
        return self.pinned + self.rest


def arrange(hits: list[Hit], votes: Mapping[str, int], k: int) -> Arranged:
    """Pin liked hits at the top, drop disliked ones, keep ``k`` in all; ranks are renumbered in shown order
    (search ``k`` plus the number of votes so that hiding leaves ``k``)."""
    liked = [p for p, v in votes.items() if v > 0]
    hidden = [p for p, v in votes.items() if v < 0]
    by_id = {h.product_id: h for h in hits}
    pinned = [by_id[p] for p in liked if p in by_id][:k]
    rest = [h for h in hits if votes.get(h.product_id, 0) == 0][: max(0, k - len(pinned))]
    shown = [replace(h, rank=i + 1) for i, h in enumerate(pinned + rest)]
    return Arranged(shown[:len(pinned)], shown[len(pinned):], hidden, [p for p in liked if p not in by_id])
