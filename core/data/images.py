"""Robust image opening: any file a stranger uploads becomes an upright RGB image or a clear error."""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core.config import settings
from core.data import png_strips

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image

#: Limits (read when an image is opened, see core.config.settings): ``VPS_MAX_PIXELS`` (width x height),
#: ``VPS_MAX_BYTES`` (encoded file) and ``VPS_MAX_DECODED_BYTES`` (width x height x bytes per pixel of its mode,
#: known from the header before decoding; a JPEG is decoded at a reduced scale to fit).

#: bytes per pixel as Pillow stores a mode (every mode not listed takes four)
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_JPEG_SCALES = (1, 2, 4, 8)
#: pixels kept across the shorter side when a caller asks for no size: larger images are reduced right after
#: decoding (a JPEG while decoding), so a huge photo costs about what a 12-megapixel one does from then on
WORK_SIZE = 2048
#: an image is reduced to at most this many times the working size squared (see :func:`reduce_factor`)
MAX_WORK_AREA = 4

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit before decoding


def _limit(name: str, given: int | None) -> int:
    """``given``, else the setting ``name`` (``VPS_<NAME>``)."""
    return settings.get(name) if given is None else given


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


def read_source(src: ImageSource, max_bytes: int | None = None) -> bytes | Image.Image | str | os.PathLike:
    """``src`` as something that can be opened again: a file object (an upload) is read into bytes (within
    ``max_bytes``), anything else is returned as it is."""
    if isinstance(src, (str, os.PathLike, bytes, bytearray, Image.Image)):
        return src
    return _read_bytes(src, _limit("max_bytes", max_bytes))


def decoded_bytes(size: tuple[int, int], mode: str) -> int:
    """Memory that decoding an image of ``size`` in ``mode`` takes."""
    return size[0] * size[1] * _PIXEL_BYTES.get(mode, 4)


def _jpeg_scale(size: tuple[int, int], mode: str, draft_size: int | None, max_decoded: int) -> int:
    """The JPEG decode scale: the largest that keeps ``draft_size`` pixels across, at least the smallest that fits
    ``max_decoded`` bytes (the memory bound wins)."""
    fits = next((s for s in _JPEG_SCALES if decoded_bytes((-(-size[0] // s), -(-size[1] // s)), mode)
                 <= max_decoded), _JPEG_SCALES[-1])
    keeps = max((s for s in _JPEG_SCALES if draft_size and min(size) // s >= draft_size), default=1)
    return max(fits, keeps)


def reduce_factor(size: tuple[int, int], work: int) -> int:
    """The integer factor an image of ``size`` is reduced by to work on it at ``work`` pixels: the largest that keeps
    ``work`` pixels across its shorter side, more where that would leave over ``MAX_WORK_AREA`` x ``work``²
    pixels (a long strip of an image: 450 x 142,000 pixels would otherwise stay 16 megapixels)."""
    w, h = size
    return max(min(w, h) // work, math.ceil(math.sqrt(w * h / (MAX_WORK_AREA * work * work))))


def _shrink(img: Image.Image, at_least: int) -> Image.Image:
    """``img`` reduced by :func:`reduce_factor` (``at_least`` pixels across, for all but very long images)."""
    f = reduce_factor(img.size, at_least)
    if f < 2:
        return img
    size = (-(-img.width // f), -(-img.height // f))
    if img.mode in ("1", "P", "PA"):  # palette indices cannot be averaged
        return img.resize(size, Image.Resampling.NEAREST)
    if img.mode.startswith("I;16"):
        return img.resize(size, Image.Resampling.BOX)
    return img.reduce(f)


def _wide_to_gray(img: Image.Image, rows: int = 256) -> Image.Image:
    """16-bit, 32-bit and float images stretched to 8-bit gray, a strip of rows at a time (two passes: the range,
    then the pixels), so no full-size wide copy is made."""

    def strips():
        for a in range(0, img.height, rows):
            yield a, np.asarray(img.crop((0, a, img.width, min(a + rows, img.height))), np.float64)

    lo, hi = np.inf, -np.inf
    for _, s in strips():
        lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
    out = np.zeros((img.height, img.width), np.uint8)
    if hi > lo:
        for a, s in strips():
            out[a : a + len(s)] = np.clip((s - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _wide_to_gray(img)
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def _png_reduced(data: bytes, header: Image.Image, factor: int, max_decoded: int) -> Image.Image | None:
    """A large PNG decoded a strip at a time, reduced ``factor`` times and upright (see :mod:`core.data.png_strips`);
    None for those read whole (interlaced, 16-bit colour)."""
    try:
        lay = png_strips.layout(data)
        if lay is None or (lay.width, lay.height) != header.size:
            return None
        size = (-(-lay.width // factor), -(-lay.height // factor))
        if decoded_bytes(size, "RGBA") > max_decoded:
            return None  # the whole-image check refuses it in one line
        return png_strips.decode_reduced(data, lay, factor)
    except png_strips.PngError as e:
        raise ImageError(f"corrupt or truncated image: {e}") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types on hostile input
        raise ImageError(f"corrupt or truncated image: {type(e).__name__}") from None


def open_image(
    src: ImageSource,
    *,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    draft_size: int | None = None,
    max_decoded: int | None = None,
) -> Image.Image:
    """Open ``src`` (path, bytes, file object or PIL image) as an upright RGB image.

    Raises :class:`ImageError` with a one-line reason for anything unusable: empty, truncated or
    non-image files, decompression bombs (more than ``max_pixels``), files over ``max_bytes``, images whose
    decoded pixels would take more than ``max_decoded`` bytes (checked from the header, before decoding; a JPEG
    is decoded at a reduced scale that fits instead). The image is reduced as soon as it is decoded (a JPEG while
    decoding) to the smallest integer scale that still has ``draft_size`` (default :data:`WORK_SIZE`) pixels
    across; a palette or 1-bit image is reduced before it is converted to RGB.
    """
    work = WORK_SIZE if draft_size is None else draft_size
    max_pixels = _limit("max_pixels", max_pixels)
    max_bytes = _limit("max_bytes", max_bytes)
    max_decoded = _limit("max_decoded_bytes", max_decoded)
    streamed = None
    if isinstance(src, Image.Image):
        img = src
        if img.width * img.height > max_pixels:
            raise ImageError(f"image is {img.width}x{img.height}, more than the {max_pixels:,} pixel limit")
    else:
        data = _read_bytes(src, max_bytes)
        img = _header(data)
        w, h = img.size
        if w < 1 or h < 1:
            raise ImageError("image has no pixels")
        if w * h > max_pixels:
            raise ImageError(f"image is {w}x{h}, more than the {max_pixels:,} pixel limit")
        if img.format == "JPEG":
            scale = _jpeg_scale(img.size, img.mode, work, max_decoded)
            if draft_size or scale > 1:
                img.draft("RGB", (w // scale, h // scale))
        elif img.format == "PNG" and work and reduce_factor((w, h), work) >= 2:
            streamed = _png_reduced(data, img, reduce_factor((w, h), work), max_decoded)
            img = streamed or img
        need = decoded_bytes(img.size, img.mode)
        if need > max_decoded:
            raise ImageError(f"image is {w}x{h} ({img.mode}): decoding it takes {need / 1e6:.0f} MB, more than "
                             f"the {max_decoded / 1e6:.0f} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if streamed is None:  # a PNG read a strip at a time is already reduced and upright
                img.seek(0) if getattr(img, "is_animated", False) else None
                img.load()
                img = _shrink(img, work) if work else img
                img = ImageOps.exif_transpose(img) or img
            img = _to_rgb(img)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ImageError(f"corrupt or truncated image: {type(e).__name__}".splitlines()[0]) from None
    if min(img.size) < 1:
        raise ImageError("image has no pixels")
    return img


def _header(data: bytes) -> Image.Image:
    """``data`` opened (its header read, nothing decoded); :class:`ImageError` when it is not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image file (unrecognised format)") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types on hostile input
        raise ImageError(f"unreadable image: {type(e).__name__}: {e}".splitlines()[0]) from None


def whole_decode_bytes(data: bytes) -> int:
    """Memory decoding ``data`` takes where it cannot be decoded at a reduced size (every format but JPEG and a PNG
    read a strip at a time), from its header; 0 where it can. :class:`ImageError` when it is not an image."""
    img = _header(data)
    try:
        lay = png_strips.layout(data) if img.format == "PNG" else None
    except png_strips.PngError as e:
        raise ImageError(f"corrupt or truncated image: {e}") from None
    if img.format == "JPEG" or (lay is not None and png_strips.reads_in_strips(lay)):
        return 0
    return decoded_bytes(img.size, img.mode)


def image_size(src: ImageSource) -> tuple[int, int]:
    """(width, height) of ``src`` upright, read from its header (nothing decoded); :class:`ImageError` when it is
    not an image."""
    if isinstance(src, Image.Image):
        return src.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = _read_bytes(src, _limit("max_bytes", None))
            img = Image.open(io.BytesIO(data))
            lay = png_strips.layout(data) if img.format == "PNG" else None  # Pillow would decode a PNG for its EXIF
            turned = (png_strips.orientation(lay) if lay else img.getexif().get(0x0112, 1)) in (5, 6, 7, 8)
    except Exception as e:  # noqa: BLE001 - PIL raises many types on hostile input
        raise ImageError(f"unreadable image: {type(e).__name__}".splitlines()[0]) from None
    return (img.height, img.width) if turned else img.size


def thumbnail(img: Image.Image, size: int = 256) -> Image.Image:
    """A copy no larger than ``size`` on its longer side."""
    t = img.copy()
    t.thumbnail((size, size))
    return t
