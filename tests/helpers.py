"""Small test doubles shared by the tests."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from core.data.catalog import Catalog
from core.embedding.base import Embedder


class PixelEmbedder(Embedder):
    """A cheap, deterministic embedder (8x8 colour thumbnail) for testing index logic quickly."""

    def __init__(self, spec: str = "test-pixels"):
        self.spec, self.dim, self.image_size = spec, 192, 8

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        arr = np.asarray(img.resize((8, 8), Image.BILINEAR), np.float32) / 255.0 - 0.5
        return torch.from_numpy(arr).permute(2, 0, 1)

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1) + 1e-3


def subset(cat: Catalog, product_ids: set[str]) -> Catalog:
    return Catalog(cat.root, [r for r in cat.rows if r.product_id in product_ids], [], cat.columns)
