"""Metric-learning losses by name (implementations from pytorch-metric-learning)."""

from __future__ import annotations

from pytorch_metric_learning import distances, losses
from torch import nn

from core.config.defaults import LOSSES


def make_loss(name: str, num_classes: int, dim: int) -> nn.Module:
    """``proxy-anchor`` (learns one proxy per class), ``triplet`` (use with a batch-hard miner), ``supcon``, or
    the proxy classifiers ``norm-softmax`` (cosine softmax, temperature 0.05) and ``arcface`` (additive angular
    margin), which suit few images per class."""
    if name == "proxy-anchor":
        return losses.ProxyAnchorLoss(num_classes, dim, margin=0.1, alpha=32)
    if name == "triplet":
        return losses.TripletMarginLoss(margin=0.2, distance=distances.CosineSimilarity())
    if name == "supcon":
        return losses.SupConLoss(temperature=0.1)
    if name == "norm-softmax":
        return losses.NormalizedSoftmaxLoss(num_classes, dim, temperature=0.05)
    if name == "arcface":
        return losses.ArcFaceLoss(num_classes, dim, margin=28.6, scale=32)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
