"""Batch samplers: m samples per class so every batch has positives for every label it holds."""

from __future__ import annotations

from collections.abc import Sequence

from pytorch_metric_learning.samplers import MPerClassSampler


def m_per_class(labels: Sequence[int], m: int, batch_size: int, length: int | None = None) -> MPerClassSampler:
    """Indices in batches of ``batch_size`` holding ``m`` samples of each of ``batch_size // m`` classes (at most
    ``m`` per class of every class: fewer samples than a batch, as a catalog of one picture per product, still
    make one batch an epoch)."""
    n_classes = len(set(labels))
    batch_size = min(batch_size, m * n_classes) // m * m
    return MPerClassSampler(list(labels), m=m, batch_size=batch_size,
                            length_before_new_iter=max(length or len(labels), batch_size))
