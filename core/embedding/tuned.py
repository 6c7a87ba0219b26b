"""Fine-tuning the last stages of EfficientNet-Lite on cached activations (``train-metric --tune N``).

The network is cut below its last ``N`` stages. :class:`StageTap` is the frozen part as an embedder: its
"vector" is the pooled multi-scale read-outs below the cut and the activation map at the cut, flattened (not
normalised), so the feature cache stores it like any other view. :class:`TunedTop` is a trainable copy of the
stages above the cut; on a tap vector it returns the same ``:ms`` read-out the frozen network gives (equal to
it before training). Each epoch thus costs only the top of the network.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.embedding.base import Embedder
from core.embedding.efficientnet import EfficientNetLiteEmbedder, taps

#: the tap vectors are large (~10k values): stored as float16 in the feature cache
TAP_DTYPE = np.float16


def cut_block(net, tune: int) -> int:
    """Index of the last frozen block: the end of the stage below the ``tune`` tuned ones."""
    ends = taps(net)
    if not 1 <= tune < len(ends):
        raise ValueError(f"tune must be 1..{len(ends) - 1} stages, not {tune}")
    return ends[-1 - tune]


def tunable(base: Embedder) -> bool:
    """Whether ``base`` can have its last stages fine-tuned (an ``efficientnet-lite*:ms`` read-out)."""
    return isinstance(base, EfficientNetLiteEmbedder) and base.pool == "ms"


def _check_base(base: Embedder) -> EfficientNetLiteEmbedder:
    if not tunable(base):
        raise ValueError(f"fine-tuning backbone stages needs an efficientnet-lite*:ms base, not {base.spec}")
    return base


class StageTap(Embedder):
    """The frozen network below the cut: pooled read-outs of the taps below it, then the cut's map, flattened."""

    store_dtype = TAP_DTYPE

    def __init__(self, base: Embedder, tune: int):
        self.base = _check_base(base)
        self.tune, self.cut = tune, cut_block(base.net, tune)
        self.below = [i for i in taps(base.net) if i < self.cut]  # taps pooled in the frozen part
        self.spec = f"{base.spec}@tune{tune}"
        self.image_size = base.image_size
        with torch.inference_mode():
            x = self._frozen(torch.zeros(1, 3, base.image_size, base.image_size))
        self.map_shape = tuple(x[1].shape[1:])
        self.dim = sum(int(p.shape[1]) for p in x[0]) + int(np.prod(self.map_shape))
        self._ort = None

    def _frozen(self, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        net = self.base.net
        x = net._swish(net._bn0(net._conv_stem(batch.contiguous(memory_format=torch.channels_last))))
        pooled = []
        for idx, block in enumerate(net._blocks[: self.cut + 1]):
            x = block(x, drop_connect_rate=None)
            if idx in self.below:
                pooled.append(x.mean(dim=(2, 3)))
        return pooled, x

    def preprocess(self, img):
        return self.base.preprocess(img)

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        pooled, x = self._frozen(batch)
        return torch.cat([*pooled, x.flatten(1)], dim=1)

    @property
    def parallel_batches(self) -> bool:
        return self.base.parallel_batches

    @torch.inference_mode()
    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """Raw tap vectors (not normalised), through ONNX Runtime when the base uses it."""
        if self.base._runner() is None:
            return self.forward_images(batch).float().numpy()
        if self._ort is None:
            from core.embedding import onnx

            model = onnx.cached_model(self.spec, self.base.weights, self.image_size,
                                      lambda: onnx.export(self.base.net, self.forward_images, self.image_size))
            self._ort = onnx.OrtRunner(model, self.base.threads or 1)
        return self._ort.run(batch.numpy())

    def info(self) -> dict:
        return {**super().info(), "base": self.base.info(), "tune": self.tune}


class TunedTop(nn.Module):
    """Trainable copy of the stages above the cut; tap vector -> the ``:ms`` read-out (unit parts, concatenated).

    Batch-norm statistics stay those of ImageNet (call :meth:`train` freely: the copied layers stay in eval
    mode), so small or one-product batches train the weights without shifting them."""

    def __init__(self, tap: StageTap):
        super().__init__()
        net = tap.base.net
        self.split = [int(net._blocks[i]._block_args.output_filters) for i in tap.below]
        self.map_shape = tap.map_shape
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in net._blocks[tap.cut + 1 :])
        ends = [i - tap.cut - 1 for i in taps(net) if i >= tap.cut]
        self.pool_after = set(ends)  # block outputs pooled (incl. the cut's map itself: index -1)
        self.conv_head, self.bn1 = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1)
        self.swish = copy.deepcopy(net._swish)
        self.float().eval()

    def train(self, mode: bool = True) -> TunedTop:
        return super().train(False)

    def forward(self, tap: torch.Tensor) -> torch.Tensor:
        tap = tap.float()
        n_pooled = sum(self.split)
        parts = list(tap[:, :n_pooled].split(self.split, dim=1))
        x = tap[:, n_pooled:].reshape(-1, *self.map_shape).contiguous(memory_format=torch.channels_last)
        if -1 in self.pool_after:
            parts.append(x.mean(dim=(2, 3)))
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=None)
            if i in self.pool_after:
                parts.append(x.mean(dim=(2, 3)))
        parts.append(self.swish(self.bn1(self.conv_head(x))).mean(dim=(2, 3)))
        return torch.cat([F.normalize(p, dim=-1) for p in parts], dim=1)
