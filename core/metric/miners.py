"""Pair/triplet miners by loss (implementations from pytorch-metric-learning)."""

from __future__ import annotations

from pytorch_metric_learning import distances, miners


def make_miner(loss: str):
    """Batch-hard mining for the triplet loss; the other losses weigh all pairs themselves (None)."""
    if loss == "triplet":
        return miners.BatchHardMiner(distance=distances.CosineSimilarity())
    return None
