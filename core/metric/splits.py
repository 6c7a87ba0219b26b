"""Held-out splits of the training photos, for early stopping and for choosing the query zooms.

A held-out split is only useful if it predicts how the trained embedder does on photos it has never seen:
those of another store visit. Photos of one product taken together look alike, so a random pick (or the last
few listed) holds out near-copies of training photos and scores near 1.0 whatever is trained.
:func:`appearance_holdout` holds out, per label, the group of photos that looks least like the label's catalog
image instead: photos taken together go to the same side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from core.config.defaults import HOLDOUT_SPLITS


class Labelled(Protocol):
    label: str
    is_catalog: bool


def _pools(samples: Sequence[Labelled]) -> dict[str, list[int]]:
    """Per label, the samples a split may hold out: the labelled views, or the catalog images where there are
    no views (a catalog of photos, labelled by category)."""
    pool = [i for i, s in enumerate(samples) if not s.is_catalog] or list(range(len(samples)))
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in pool:
        by_label[samples[i].label].append(i)
    return by_label


def listed_holdout(samples: Sequence[Labelled], frac: float) -> set[int]:
    """The last ``frac`` of each label's views in listed order (photos listed together were often taken
    together)."""
    out: set[int] = set()
    for ids in _pools(samples).values():
        if len(ids) >= 3 and frac > 0:
            out.update(ids[-max(1, round(frac * len(ids))):])
    return out


def appearance_holdout(samples: Sequence[Labelled], vectors: np.ndarray, frac: float, seed: int = 0) -> set[int]:
    """About ``frac`` of each label's views (at most twice that), held out as whole k-means clusters of their
    ``vectors`` (the frozen backbone's, one row per sample; k = 1/frac), the clusters least like the label's
    catalog images first (where a label has none, least like the label's mean)."""
    from sklearn.cluster import KMeans

    out: set[int] = set()
    if frac <= 0:
        return out
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    catalog: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s.is_catalog:
            catalog[s.label].append(i)
    for label, ids in _pools(samples).items():
        if len(ids) < 3:
            continue
        ref_ids = [i for i in catalog.get(label, []) if i not in ids] or ids
        ref = v[ref_ids].mean(0)
        k = min(len(ids), max(2, round(1 / frac)))
        km = KMeans(k, n_init=3, random_state=seed).fit(v[ids])
        target = max(1, round(frac * len(ids)))
        held: list[int] = []
        for c in np.argsort(km.cluster_centers_ @ ref):  # least like the reference first
            members = [i for i, kc in zip(ids, km.labels_) if kc == c]
            if len(held) + len(members) <= min(2 * target, len(ids) - 1):
                held += members
            if len(held) >= target:
                break
        out.update(held)
    return out


__all__ = ["HOLDOUT_SPLITS", "appearance_holdout", "listed_holdout"]
