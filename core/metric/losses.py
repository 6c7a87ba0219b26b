"""Metric-learning losses by name (implementations from pytorch-metric-learning)."""

from __future__ import annotations

from pytorch_metric_learning import distances, losses
from torch import nn

from core.config.defaults import LOSSES


def make_loss(name: str, num_classes: int, dim: int) -> nn.Module:
    """``proxy-anchor`` (learns one proxy per class), ``triplet`` (use with a batch-hard miner) or ``supcon``."""
    if name == "proxy-anchor":
        return losses.ProxyAnchorLoss(num_classes, dim, margin=0.1, alpha=32)
    if name == "triplet":
        return losses.TripletMarginLoss(margin=0.2, distance=distances.CosineSimilarity())
    if name == "supcon":
        return losses.SupConLoss(temperature=0.1)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
