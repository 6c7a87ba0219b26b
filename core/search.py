"""The default search pipeline: Annoy neighbours, re-ranked by the catalog's attribute filters.

``rank="static"`` (the default everywhere: CLI, app, evaluation) scores each candidate by
``similarity + 0.25 x agreement`` on every offered attribute filter (pixel colour, and learned heads for
catalog columns that beat their majority baseline; see docs/ranking.md), or by the weights given.
``rank="dynamic"`` takes the weights per query from a trained :class:`WeightNet` (``rank-train``).
``rank="distance"`` is plain nearest-neighbour search. Either way ``Hit.score`` stays the cosine similarity
of the best-matching image; the order and ``Hit.ranking`` (weight x score per dimension) tell why.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .embedders import Embedder
from .index import Hit, ProductIndex
from .ranking import SIMILARITY, Ranker, RankingError, WeightNet, default_weights, dynamic_weights, weight_vector

RANKS = ("static", "dynamic", "distance")
DEFAULT_RANK = "static"


def make_ranker(index: ProductIndex, embedder: Embedder, *, progress=False) -> Ranker:
    """A :class:`Ranker` over the index's cached attribute artefact (built, with progress, if missing or stale)."""
    from .attributes import attributes_for

    return Ranker(index, attributes_for(index, embedder, progress=progress))


def search_products(index: ProductIndex, vector: np.ndarray, image: Image.Image | None = None, *, k: int = 10,
                    where=None, min_score: float | None = None, rank: str = DEFAULT_RANK,
                    ranker: Ranker | None = None, weights: dict[str, float] | None = None,
                    net: WeightNet | None = None) -> list[Hit]:
    """Top-``k`` products for one query vector (and its image, for the pixel-colour filter), best first."""
    if rank not in RANKS:
        raise RankingError(f"unknown ranking {rank!r}; use one of {', '.join(RANKS)}")
    if rank == "distance" or ranker is None or len(ranker.dims) == 1:
        if rank != "distance" and ranker is None:
            raise RankingError(f"{rank} ranking needs a ranker (core.search.make_ranker)")
        return index.search(vector, k, where, min_score=min_score)[0]
    ranker.n_ann = max(ranker.n_ann, 3 * k)
    cand = ranker.candidates(vector, image, where)
    if rank == "dynamic":
        if net is None:
            raise RankingError("dynamic ranking needs a trained model (python -m core rank-train ...)")
        w = dynamic_weights(net, vector, cand.query_attributes, ranker.dims)
    else:
        w = weight_vector(weights if weights is not None else default_weights(ranker.dims), ranker.dims)
    out = []
    for h in ranker.rank(cand, w, len(cand.products)):
        sim = h.scores[SIMILARITY]
        if min_score is not None and sim < min_score:
            continue
        out.append(Hit(h.product_id, round(sim, 6), len(out) + 1, h.image, h.fields,
                       {d: round(c, 6) for d, c in h.contributions.items()}))
        if len(out) == k:
            break
    return out
