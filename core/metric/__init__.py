"""Metric learning on frozen backbone features: losses, miners, samplers, heads, cached features, training.

Laid out like pytorch-metric-learning (which supplies the losses, miners and sampler): each part is separate
and composable; :mod:`core.metric.train` wires them into ``python -m core train-metric``.
"""
