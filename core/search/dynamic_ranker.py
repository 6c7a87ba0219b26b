"""Dynamic weights: :class:`WeightNet` predicts one weight per ranking dimension from the query (its embedding
and its attribute confidences), trained on labelled queries with a listwise loss (``rank-train``), and saved
beside the index's attribute artefact. Torch is imported here only, when the dynamic ranking is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.config.store import new_generation, read_current, stale_key, write_json, writer_lock
from core.embedding import Embedder
from core.index import IndexBackend
from core.search.ranking import Candidates, Ranker, RankingError


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
