"""The scorer interface shared by pixel, learned and zero-shot attribute scorers, and the "better than chance" rule."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from PIL import Image


class Scorer(Protocol):
    """``score(x) -> {value: probability}`` along one dimension (colour, pattern, category ...).

    ``input`` says what ``x`` is: ``"image"`` (a PIL image) or ``"embedding"`` (a unit vector of the
    index's embedder). ``score_many`` scores a batch into an (N, len(values)) array.
    """

    name: str
    input: str
    source: str  # "pixels" | "learned" | "zero-shot"
    values: list[str]

    def score(self, x: Image.Image | np.ndarray) -> dict[str, float]: ...

    def score_many(self, xs) -> np.ndarray: ...


def beats_chance(accuracy: float, baseline: float, n: int, z: float = 2.0) -> bool:
    """True when ``accuracy`` exceeds the majority ``baseline`` by more than ``z`` binomial standard errors."""
    if n <= 0:
        return False
    return accuracy > baseline + z * math.sqrt(max(baseline * (1 - baseline), 1e-9) / n)


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
