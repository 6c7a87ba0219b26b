"""Defaults every layer agrees on (light: the CLI's ``--help`` reads them without loading torch)."""

from __future__ import annotations

#: the offline default embedder (ImageNet EfficientNet-Lite0 from PyPI)
DEFAULT_SPEC = "efficientnet-lite0"
#: the frozen base that metric learning trains a head on (multi-scale read-out of the same network)
METRIC_BASE_SPEC = "efficientnet-lite0:ms"
#: metric-learning losses by name (core.metric.losses builds them)
LOSSES = ("proxy-anchor", "triplet", "supcon", "norm-softmax", "arcface")
HOLDOUT_SPLITS = ("appearance", "listed")  # held-out splits of train-metric (core.metric.splits)
#: search rankings: attribute re-ranking with fixed or per-query weights, or plain nearest neighbours
RANKS = ("static", "dynamic", "distance")
DEFAULT_RANK = "static"
