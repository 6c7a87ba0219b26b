"""Robust image opening: any file a stranger uploads becomes an upright RGB image or a clear error."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image

#: Largest decoded image accepted (width x height); override with VPS_MAX_PIXELS.
MAX_PIXELS = int(os.environ.get("VPS_MAX_PIXELS", 64_000_000))
#: Largest encoded file accepted, in bytes; override with VPS_MAX_BYTES.
MAX_BYTES = int(os.environ.get("VPS_MAX_BYTES", 50 * 1024 * 1024))

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit before decoding


class ImageError(ValueError):
    """An input that is not a usable image; the message is one line meant for a user."""


def _read_bytes(src: ImageSource, max_bytes: int) -> bytes:
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        p = Path(src)
        if not p.is_file():
            raise ImageError(f"{p.name}: file not found")
        size = p.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{p.name}: file is {size / 1e6:.1f} MB, the limit is {max_bytes / 1e6:.0f} MB")
        data = p.read_bytes()
    else:
        data = src.read(max_bytes + 1)
    if len(data) == 0:
        raise ImageError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"file is larger than the {max_bytes / 1e6:.0f} MB limit")
    return data


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def open_image(
    src: ImageSource,
    *,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    draft_size: int | None = None,
) -> Image.Image:
    """Open ``src`` (path, bytes, file object or PIL image) as an upright RGB image.

    Raises :class:`ImageError` with a one-line reason for anything unusable: empty, truncated or
    non-image files, decompression bombs (more than ``max_pixels``), files over ``max_bytes``.
    ``draft_size`` lets JPEG decode at a reduced scale that is still at least that many pixels.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    if isinstance(src, Image.Image):
        img = src
        if img.width * img.height > max_pixels:
            raise ImageError(f"image is {img.width}x{img.height}, more than the {max_pixels:,} pixel limit")
    else:
        data = _read_bytes(src, max_bytes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError("not an image file (unrecognised format)") from None
        except Exception as e:  # noqa: BLE001 - PIL raises many types on hostile input
            raise ImageError(f"unreadable image: {type(e).__name__}: {e}".splitlines()[0]) from None
        w, h = img.size
        if w < 1 or h < 1:
            raise ImageError("image has no pixels")
        if w * h > max_pixels:
            raise ImageError(f"image is {w}x{h}, more than the {max_pixels:,} pixel limit")
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.seek(0) if getattr(img, "is_animated", False) else None
            img.load()
            img = ImageOps.exif_transpose(img) or img
            img = _to_rgb(img)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ImageError(f"corrupt or truncated image: {type(e).__name__}".splitlines()[0]) from None
    if min(img.size) < 1:
        raise ImageError("image has no pixels")
    return img


def thumbnail(img: Image.Image, size: int = 256) -> Image.Image:
    """A copy no larger than ``size`` on its longer side."""
    t = img.copy()
    t.thumbnail((size, size))
    return t
