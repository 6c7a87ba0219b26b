"""Zero-shot attribute heads from text prompts, for embedders with a text tower (open_clip)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.embedding import Embedder
from core.search.attributes.base import beats_chance, softmax

TEMPLATES = ("a photo of a {v} product", "a product whose {c} is {v}", "a photo of a {v}")


@dataclass
class ZeroShotHead:
    """``score(embedding) -> {value: probability}``: softmax over cosine similarities to prompt embeddings."""

    name: str
    values: list[str]
    text: np.ndarray  # (n_values, dim) unit vectors, mean over templates
    column: str = ""
    temperature: float = 100.0
    report: dict = field(default_factory=dict)
    input = "embedding"
    source = "zero-shot"

    def score_many(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.temperature * (np.atleast_2d(np.asarray(x, np.float64)) @ self.text.T))

    def score(self, x: np.ndarray) -> dict[str, float]:
        return dict(zip(self.values, map(float, self.score_many(x)[0])))


def zero_shot_head(embedder: Embedder, column: str, values: list[str]) -> ZeroShotHead:
    """Embed the prompts of every value (averaged over :data:`TEMPLATES`)."""
    texts = [t.format(v=v.replace("-", " "), c=column) for v in values for t in TEMPLATES]
    t = embedder.embed_text(texts).reshape(len(values), len(TEMPLATES), -1).mean(1)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return ZeroShotHead(f"zs_{column}", list(values), t.astype(np.float32), column)


def validate(head: ZeroShotHead, X: np.ndarray, labels: list[str]) -> ZeroShotHead:
    """Accuracy on labelled catalog vectors; offered only when better than the majority baseline."""
    keep = np.array([lab in head.values for lab in labels])
    y = np.array(labels)[keep]
    if not len(y):
        head.report = {"accuracy": float("nan"), "baseline": 0.0, "n": 0, "offered": False}
        return head
    pred = np.array(head.values)[head.score_many(np.asarray(X)[keep]).argmax(1)]
    acc = float((pred == y).mean())
    _, counts = np.unique(y, return_counts=True)
    base = float(counts.max() / counts.sum())
    head.report = {"accuracy": acc, "baseline": base, "n": int(len(y)), "offered": beats_chance(acc, base, len(y))}
    return head
