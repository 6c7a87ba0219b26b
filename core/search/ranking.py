"""Ranking beyond embedding distance: per-filter candidate retrieval, weighted scores, static and dynamic weights.

Every candidate has one score per dimension: ``similarity`` (cosine of its best image with the query) and,
per offered attribute dimension, the agreement ``sum_v p_query(v) * p_product(v)`` of the query's predicted
attribute with the product's. The final score is ``sum_d weight_d * score_d``; each result keeps those
contributions so it can explain itself. Static weights come from the user (presets saved as JSON);
dynamic weights come per query from :class:`~core.search.dynamic_ranker.WeightNet` (a torch model, in its own
module so that a search by distance or static weights imports no torch).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.config.store import atomic_path, write_json
from core.index import IndexBackend, row_scores
from core.search.attributes import AttributeSet

SIMILARITY = "similarity"


class RankingError(ValueError):
    """Weights, presets or models that cannot be used as asked."""


@dataclass
class RankedHit:
    product_id: str
    score: float
    rank: int
    image: str
    fields: dict[str, str]
    scores: dict[str, float]  # per dimension, before weighting
    contributions: dict[str, float]  # weight x score per dimension; they sum to ``score``

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidates:
    """The merged candidate set of one query and its (n, len(dims)) per-dimension score matrix."""

    dims: list[str]
    products: list[str]
    features: np.ndarray
    best_image: list[int]
    query_attributes: dict[str, dict[str, float]] = field(default_factory=dict)


# ---------------------------------------------------------------- weights
def parse_weights(text: str | None, dims: list[str] | None = None) -> dict[str, float]:
    """``"colour=2,pattern=1"`` -> {"colour": 2.0, "pattern": 1.0}; unknown dimensions are an error."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, val = part.partition("=")
        name = name.strip()
        try:
            out[name] = float(val)
        except ValueError:
            raise RankingError(f"bad weight {part.strip()!r}: use name=number, e.g. colour=2") from None
        if not sep or not math.isfinite(out[name]):
            raise RankingError(f"bad weight {part.strip()!r}: use name=number, e.g. colour=2")
        if dims is not None and name not in dims:
            raise RankingError(f"unknown dimension {name!r}; available: {', '.join(dims)}")
    return out


def default_weights(dims: list[str]) -> dict[str, float]:
    """The default static preset: similarity 1, every attribute filter 0.25."""
    return {d: (1.0 if d == SIMILARITY else 0.25) for d in dims}


def weight_vector(weights: dict[str, float], dims: list[str]) -> np.ndarray:
    """Weights in ``dims`` order; a dimension not named gets 0 (similarity gets 1 unless named)."""
    return np.array([weights.get(d, 1.0 if d == SIMILARITY and SIMILARITY not in weights else 0.0) for d in dims])


def presets_path() -> Path:
    from core.config.paths import cache_dir

    return cache_dir() / "ranking" / "presets.json"


def load_presets() -> dict[str, dict[str, float]]:
    p = presets_path()
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except (OSError, ValueError):
        return {}


def save_preset(name: str, weights: dict[str, float]) -> Path:
    """Save (or replace) a named static preset; written atomically."""
    if not name.strip():
        raise RankingError("a preset needs a name")
    presets = load_presets()
    presets[name.strip()] = {k: float(v) for k, v in weights.items()}
    p = presets_path()
    with atomic_path(p) as tmp:
        write_json(tmp, presets)
    return p


# ---------------------------------------------------------------- candidates and scores
class Ranker:
    """Candidates and per-dimension scores for an index and its attribute artefact."""

    def __init__(self, index: IndexBackend, attributes: AttributeSet, *, n_ann: int = 50, n_per_filter: int = 50):
        self.index, self.attributes = index, attributes
        self.n_ann, self.n_per_filter = n_ann, n_per_filter
        self.dims = [SIMILARITY, *attributes.dims]
        self.row_of = {p: i for i, p in enumerate(attributes.products)}

    def query_attributes(self, vector: np.ndarray, image: Image.Image | None) -> dict[str, dict[str, float]]:
        return self.attributes.score_query(vector, image)

    def candidates(self, vector: np.ndarray, image: Image.Image | None = None, where=None,
                   attributes: dict[str, dict[str, float]] | None = None, n_ann: int | None = None) -> Candidates:
        """``n_ann`` (default ``self.n_ann``) ANN neighbours merged with each filter's best-agreeing products,
        scored on every dimension."""
        qa = attributes if attributes is not None else self.query_attributes(vector, image)
        allowed = {self.index.item_pid[i] for i in np.flatnonzero(self.index.allowed_mask(where))} if where else None
        pool = [h.product_id for h in self.index.search(vector, n_ann or self.n_ann, where)[0]]
        agree = {}
        for name, probs in qa.items():
            d = self.attributes.dims[name]
            p = np.array([probs.get(v, 0.0) for v in d.values])
            agree[name] = d.catalog @ p
            picked: list[str] = []
            for r in np.argsort(-agree[name], kind="stable"):  # best first, until n_per_filter or no agreement
                if agree[name][r] <= 0 or len(picked) == self.n_per_filter:
                    break
                if allowed is None or self.attributes.products[r] in allowed:
                    picked.append(self.attributes.products[r])
            pool += picked
        products = list(dict.fromkeys(pool))
        feats = np.zeros((len(products), len(self.dims)))
        groups = [self.index.vector_ids[pid] for pid in products]
        if not groups:
            return Candidates(self.dims, [], feats, [], qa)
        sims = row_scores(self.index.vectors[np.concatenate(groups)], vector)
        ends = np.cumsum([len(g) for g in groups])
        best = []
        for j, (g, b) in enumerate(zip(groups, ends)):  # each product's best image, in one matrix product
            s = sims[b - len(g):b]
            feats[j, 0] = float(s.max())
            best.append(g[int(s.argmax())])
        rows = [self.row_of[pid] for pid in products]
        for k, name in enumerate(self.dims[1:], start=1):
            if name in agree:
                feats[:, k] = agree[name][rows]
        return Candidates(self.dims, products, feats, best, qa)

    def rank(self, cand: Candidates, weights: np.ndarray | dict[str, float], k: int = 10) -> list[RankedHit]:
        """Order candidates by ``features @ weights``; ties broken by similarity, then product id."""
        w = weight_vector(weights, cand.dims) if isinstance(weights, dict) else np.asarray(weights, float)
        contrib = cand.features * w[None]
        total = contrib.sum(1)
        order = sorted(range(len(cand.products)), key=lambda j: (-total[j], -cand.features[j, 0], cand.products[j]))
        out = []
        for r, j in enumerate(order[:k]):
            pid = cand.products[j]
            out.append(RankedHit(pid, float(total[j]), r + 1, self.index.image_path(cand.best_image[j]),
                                 dict(self.index.products.get(pid, {})),
                                 {d: float(cand.features[j, i]) for i, d in enumerate(cand.dims)},
                                 {d: float(contrib[j, i]) for i, d in enumerate(cand.dims)}))
        return out
