"""The embedder interface shared by every backend.

Importing it costs no torch: an embedder that runs ONNX Runtime on numpy arrays (the default one, with its
cached ONNX model) serves a search without loading torch at all; torch is imported where a backend needs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


class Embedder:
    """Maps images (and, for some backends, text) into one L2-normalised vector space.

    Backends implement :meth:`preprocess` (PIL -> CHW float tensor) and :meth:`forward_images`
    (NCHW tensor -> N x dim tensor). Everything else is shared. The batch paths feed numpy arrays
    (:meth:`pixels`, :meth:`embed_pixels`); a backend that runs without torch overrides those two.
    """

    spec: str = ""
    dim: int = 0
    image_size: int = 224
    supports_text: bool = False
    #: a whole-photo query is embedded as the mean of these centre zooms (1.0: the photo as it is); a trained
    #: head sets them from its held-out photos (``train-metric --query-zooms``). Catalog images, crops and
    #: found boxes are embedded as they are.
    query_zooms: tuple[float, ...] = (1.0,)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        raise NotImplementedError

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_text(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError(f"{self.spec} has no text tower; use an open_clip embedder for text queries")

    def pixels(self, img: Image.Image) -> np.ndarray:
        """:meth:`preprocess` as a CHW float32 array: what the batch embedder stacks and feeds :meth:`embed_pixels`."""
        return self.preprocess(img).numpy()

    def embed_pixels(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 array (rows of :meth:`pixels`) -> (N, dim) float32 vectors, as :meth:`embed_tensors`."""
        import torch

        return self.embed_tensors(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))

    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return normalize(self.forward_images(batch).float().numpy())

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB PIL images -> (N, dim) float32, unit length."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_pixels(np.stack([self.pixels(im) for im in images]))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return normalize(self.forward_text(list(texts)).float().numpy())

    def info(self) -> dict:
        """What produced a vector: recorded in every artefact built from it."""
        return {"spec": self.spec, "dim": self.dim, "image_size": self.image_size}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, dim={self.dim})"


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and take the centre square."""
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))
