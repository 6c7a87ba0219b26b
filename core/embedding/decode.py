"""One decode policy for every image that is embedded: a query (file, upload, PIL image, with an optional crop)
or a catalog image, from the CLI, the app, evaluation and the benchmark alike."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from core.data.images import ImageSource, open_image

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

    @classmethod
    def from_box(cls, box: tuple[float, float, float, float], size: tuple[int, int]) -> Crop:
        """The crop of a pixel box (left, top, right, bottom) in an image of ``size``, clipped to the image."""
        w, h = size
        left, top = min(max(box[0] / w, 0.0), 1.0), min(max(box[1] / h, 0.0), 1.0)
        right, bottom = min(max(box[2] / w, 0.0), 1.0), min(max(box[3] / h, 0.0), 1.0)
        if not (left < right and top < bottom):
            raise QueryError(f"box {tuple(round(v) for v in box)} keeps nothing of a {w}x{h} image")
        return cls(left, top, right, bottom)

    @property
    def is_full(self) -> bool:
        return (self.left, self.top, self.right, self.bottom) == FULL


def crop(img: Image.Image, c: Crop) -> Image.Image:
    return img if c.is_full else img.crop(c.box(img.size))


#: query zooms a head may carry: 1 to MAX_ZOOMS centre zooms, each in [MIN_ZOOM, 1]
MAX_ZOOMS, MIN_ZOOM = 4, 0.1


def valid_zooms(zooms: object) -> bool:
    """Whether ``zooms`` is a usable set of query zooms (a list or tuple of 1 to 4 numbers in [0.1, 1])."""
    return (isinstance(zooms, (list, tuple)) and 1 <= len(zooms) <= MAX_ZOOMS
            and all(type(z) in (int, float) and MIN_ZOOM <= z <= 1 for z in zooms))


def zoom(z: float) -> Crop:
    """The centre ``z`` of a photo in width and height (``z`` = 1: all of it): a query view toward the middle,
    where a shopper's photo holds the product (see ``Embedder.query_zooms``)."""
    if not 0 < z <= 1:
        raise QueryError(f"zoom must be in (0, 1], not {z}")
    m = (1 - z) / 2
    return Crop(m, m, 1 - m, 1 - m)


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


def border_colour(img: Image.Image) -> tuple[int, int, int]:
    """Median colour of the outermost pixels of ``img``."""
    a = np.asarray(img)
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))


def letterbox(img: Image.Image, fill: tuple[int, int, int] | None = None) -> Image.Image:
    """``img`` centred on a square canvas as wide as its longer side, the rest filled with ``fill`` (default:
    its :func:`border_colour`), so a centre crop keeps all of a wide or tall product."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new("RGB", (side, side), fill or border_colour(img))
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def decode(source: ImageSource, image_size: int, c: Crop | None = None, *, letterboxed: bool = False) -> Image.Image:
    """Open ``source`` upright in RGB, crop it and (``letterboxed``) pad it square with :func:`letterbox`. A JPEG
    is decoded at a reduced scale (``draft``) that still leaves at least ``image_size`` pixels across the kept
    region, so every path gets the same pixels."""
    c = c or Crop()
    keep = min(c.right - c.left, c.bottom - c.top)
    if keep <= 0:
        c.box((1, 1))  # raises the clear error
    img = crop(open_image(source, draft_size=math.ceil(image_size / keep)), c)
    return letterbox(img) if letterboxed else img
