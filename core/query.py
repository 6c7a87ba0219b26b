"""A shopper's query: an image (optionally cropped to the product), a text, or both -> one query vector."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .catalog import IMAGE_EXTS
from .embedders import Embedder, normalize

FULL = (0.0, 0.0, 1.0, 1.0)


class QueryError(ValueError):
    """A query that cannot be searched (nothing given, text with an image-only embedder, bad crop)."""


@dataclass(frozen=True)
class Crop:
    """Region kept, as fractions of width and height: left < right, top < bottom, all in [0, 1]."""

    left: float = 0.0
    top: float = 0.0
    right: float = 1.0
    bottom: float = 1.0

    def box(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Pixel box (left, top, right, bottom) of this crop in an image of ``size``; at least 1x1."""
        if not (0 <= self.left < self.right <= 1 and 0 <= self.top < self.bottom <= 1):
            raise QueryError("crop must keep some of the image: left < right and top < bottom, within 0..1")
        w, h = size
        x0, t = int(round(self.left * w)), int(round(self.top * h))
        r, b = max(x0 + 1, int(round(self.right * w))), max(t + 1, int(round(self.bottom * h)))
        return min(x0, w - 1), min(t, h - 1), min(r, w), min(b, h)

    @property
    def is_full(self) -> bool:
        return (self.left, self.top, self.right, self.bottom) == FULL


def crop(img: Image.Image, c: Crop) -> Image.Image:
    return img if c.is_full else img.crop(c.box(img.size))


def crop_preview(img: Image.Image, c: Crop, size: int = 480) -> Image.Image:
    """A small copy of ``img`` with the area outside the crop dimmed and the crop outlined."""
    prev = img.copy()
    prev.thumbnail((size, size))
    box = c.box(prev.size)
    shade = Image.new("RGB", prev.size, (0, 0, 0))
    out = Image.blend(prev, shade, 0.55)
    out.paste(prev.crop(box), box[:2])
    ImageDraw.Draw(out).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=(255, 64, 64), width=3)
    return out


def query_vector(embedder: Embedder, image: Image.Image | None = None, text: str = "",
                 text_weight: float = 0.5) -> np.ndarray:
    """Unit query vector: the image's, the text's, or ``(1-w)*image + w*text`` for both."""
    text = text.strip()
    if text and not embedder.supports_text:
        raise QueryError(f"{embedder.spec} cannot read text; pick an open_clip embedder for text queries")
    if image is None and not text:
        raise QueryError("give a photo (or, with an open_clip embedder, a text) to search")
    parts = []
    if image is not None:
        parts.append((1.0 - text_weight if text else 1.0, embedder.embed_images([image])[0]))
    if text:
        parts.append((text_weight if image is not None else 1.0, embedder.embed_text([text])[0]))
    return normalize(sum(w * v for w, v in parts))


def example_queries(catalog_root: str | Path) -> list[Path]:
    """Example shopper photos of a catalog: the images in its ``queries/`` folder, sorted by name."""
    d = Path(catalog_root) / "queries"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
