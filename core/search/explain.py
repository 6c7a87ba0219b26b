"""Why a result ranks where it does: the attribute scorers on offer, the query's predicted attributes and each
hit's score split into weight x score per dimension (what the "Why these results" page shows)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.index import Hit
from core.search.ranking import Ranker


def scorer_rows(ranker: Ranker) -> list[dict]:
    """One row per attribute scorer tried on the catalog: its source, whether it is offered, its accuracy and
    the majority-class baseline (NaN where not measured)."""
    out = []
    for name, r in ranker.attributes.reports.items():
        acc = r.get("cv_accuracy", r.get("accuracy", math.nan))
        base = r.get("baseline", math.nan)
        out.append({"scorer": name, "source": r.get("source", ""), "offered": bool(r.get("offered", False)),
                    "accuracy": round(float(acc), 3), "majority baseline": round(float(base), 3)})
    return out


def top_attributes(query_attributes: dict[str, dict[str, float]], n: int = 3) -> dict[str, list[tuple[str, float]]]:
    """The ``n`` most probable values of each predicted attribute of a query, most probable first."""
    return {d: sorted(probs.items(), key=lambda kv: -kv[1])[:n] for d, probs in query_attributes.items()}


@dataclass(frozen=True)
class Part:
    """One dimension's share of a hit's score: ``contribution = weight * score``."""

    dimension: str
    contribution: float
    weight: float
    score: float | None  # None where the weight is 0 (the score is not recoverable from the contribution)

    @property
    def label(self) -> str:
        return f"{self.score:.2f} × {self.weight:.2f}" if self.score is not None else "weight 0"


def score_parts(hit: Hit, weights: dict[str, float]) -> list[Part]:
    """The hit's score split by dimension, in the hit's order; the contributions sum to ``hit.score``."""
    out = []
    for d, c in hit.contributions.items():
        w = float(weights.get(d, 0.0))
        out.append(Part(d, float(c), w, float(c) / w if w else None))
    return out


def shared_range(hits: list[Hit]) -> tuple[float, float]:
    """One x range for every hit's stacked score bar: from the most negative sum of parts (or 0) to the largest
    sum of positive parts, so bars of different hits compare by length."""
    lo = min([0.0, *(sum(min(c, 0.0) for c in h.contributions.values()) for h in hits)])
    hi = max([0.0, *(sum(max(c, 0.0) for c in h.contributions.values()) for h in hits)])
    return lo, (hi if hi > lo else lo + 1.0)
