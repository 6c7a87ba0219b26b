"""Ranking beyond embedding distance: per-filter candidate retrieval, weighted scores, static and dynamic weights.

Every candidate has one score per dimension: ``similarity`` (cosine of its best image with the query) and,
per offered attribute dimension, the agreement ``sum_v p_query(v) * p_product(v)`` of the query's predicted
attribute with the product's. The final score is ``sum_d weight_d * score_d``; each result keeps those
contributions so it can explain itself. Static weights come from the user (presets saved as JSON);
dynamic weights come per query from :class:`WeightNet`, trained on labelled queries with a listwise loss.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.config.store import atomic_path, new_generation, read_current, stale_key, write_json, writer_lock
from core.embedding import Embedder
from core.index import IndexBackend
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
        sims = np.asarray(self.index.vectors[np.concatenate(groups)]) @ np.asarray(vector, np.float32)
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


# ---------------------------------------------------------------- dynamic weights
def confidence_features(qa: dict[str, dict[str, float]], dims: list[str]) -> np.ndarray:
    """Per attribute dimension: top probability and normalised entropy (zeros where not scored)."""
    out = []
    for d in dims[1:]:
        p = np.array(list(qa.get(d, {}).values()), float)
        if p.size < 2 or p.sum() <= 0:
            out += [0.0, 0.0]
            continue
        p = p / p.sum()
        ent = -(p * np.log(np.maximum(p, 1e-12))).sum() / math.log(p.size)
        out += [float(p.max()), float(ent)]
    return np.array(out, np.float32)


class WeightNet(nn.Module):
    """Query embedding + attribute confidences -> one non-negative weight per dimension."""

    def __init__(self, emb_dim: int, n_dims: int, hidden: int = 16):
        super().__init__()
        self.emb_dim, self.n_dims, self.hidden = emb_dim, n_dims, hidden
        self.proj = nn.Sequential(nn.Linear(emb_dim, hidden), nn.Tanh())
        self.mlp = nn.Sequential(nn.Linear(hidden + 2 * (n_dims - 1), hidden), nn.ReLU(), nn.Linear(hidden, n_dims))
        with torch.no_grad():  # start near "similarity 1, filters 0.25"
            self.mlp[-1].weight.mul_(0.1)
            self.mlp[-1].bias.copy_(torch.tensor([0.54] + [-1.25] * (n_dims - 1)))

    def forward(self, emb: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.mlp(torch.cat([self.proj(emb), conf], -1)))


def listwise_loss(scores: torch.Tensor, relevant: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """ListNet-style: -log of the softmax mass on relevant candidates (padding masked out)."""
    s = scores.masked_fill(~valid, -1e9)
    return (torch.logsumexp(s, 1) - torch.logsumexp(s.masked_fill(~relevant, -1e9), 1)).mean()


@dataclass
class TrainingQuery:
    vector: np.ndarray
    candidates: Candidates
    relevant: np.ndarray  # bool per candidate


def train_weightnet(queries: list[TrainingQuery], emb_dim: int, dims: list[str], *, epochs: int = 300,
                    lr: float = 1e-2, weight_decay: float = 1e-3, scale: float = 10.0, seed: int = 0,
                    hidden: int = 16) -> tuple[WeightNet, dict]:
    """Fit :class:`WeightNet` so each query's relevant product gets the most softmax mass among its candidates."""
    usable = [q for q in queries if q.relevant.any()]
    if not usable:
        raise RankingError("no training query has its relevant product among the candidates")
    torch.manual_seed(seed)
    net = WeightNet(emb_dim, len(dims), hidden)
    n, m = len(usable), max(len(q.candidates.products) for q in usable)
    F = torch.zeros(n, m, len(dims))
    rel = torch.zeros(n, m, dtype=torch.bool)
    valid = torch.zeros(n, m, dtype=torch.bool)
    for i, q in enumerate(usable):
        c = len(q.candidates.products)
        F[i, :c] = torch.as_tensor(q.candidates.features, dtype=torch.float32)
        rel[i, :c] = torch.as_tensor(q.relevant)
        valid[i, :c] = True
    E = torch.as_tensor(np.stack([q.vector for q in usable]), dtype=torch.float32)
    C = torch.as_tensor(np.stack([confidence_features(q.candidates.query_attributes, dims) for q in usable]))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        w = net(E, C)
        loss = listwise_loss(scale * torch.einsum("nmd,nd->nm", F, w), rel, valid)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    return net, {"n_train": n, "n_without_relevant": len(queries) - n, "loss_first": losses[0],
                 "loss_last": losses[-1], "epochs": epochs, "lr": lr, "weight_decay": weight_decay,
                 "scale": scale, "seed": seed, "hidden": hidden}


def dynamic_weights(net: WeightNet, vector: np.ndarray, qa: dict[str, dict[str, float]], dims: list[str]) -> np.ndarray:
    with torch.no_grad():
        e = torch.as_tensor(np.asarray(vector, np.float32))[None]
        c = torch.as_tensor(confidence_features(qa, dims))[None]
        return net(e, c)[0].double().numpy()


# ---------------------------------------------------------------- dynamic model artefact
def model_dir(index: IndexBackend) -> Path:
    from core.search.attributes.artefact import artefact_dir

    return artefact_dir(index) / "dynamic"


def save_model(net: WeightNet, root: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    with writer_lock(root), new_generation(root) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp / "weights.safetensors"))
        write_json(tmp / "manifest.json", {**meta, "emb_dim": net.emb_dim, "n_dims": net.n_dims,
                                           "hidden": net.hidden})


def load_model(root: Path, expect: dict) -> tuple[WeightNet, dict]:
    """The saved dynamic ranker; refuses one trained for another index, embedder or attribute set."""
    from safetensors.torch import load_file

    current = read_current(root)
    if current is None:
        raise RankingError("no dynamic ranker trained for this index yet "
                           "(python -m core rank-train --index DIR --queries CSV)")
    gen, meta = current
    if k := stale_key(meta, expect):
        raise RankingError(f"the dynamic ranker is stale ({k} changed); train it again with rank-train")
    net = WeightNet(meta["emb_dim"], meta["n_dims"], meta["hidden"])
    net.load_state_dict(load_file(str(gen / "weights.safetensors")))
    net.eval()
    return net, meta


def model_key(ranker: Ranker, embedder: Embedder) -> dict:
    """What a dynamic ranker depends on: embedder, index content, the exact dimension list."""
    return {"embedder": embedder.spec, "index_fingerprint": ranker.index.fingerprint, "dims": ranker.dims}
