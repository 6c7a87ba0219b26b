"""A large PNG decoded a strip of rows at a time and reduced as it goes, so a huge image (a 60-megapixel 1-bit PNG of
a few KB) never exists at full size in memory.

Pillow decodes a PNG whole; here the compressed rows are inflated a strip at a time, un-filtered by Pillow's own
decoder (the strip rewrapped as a small PNG whose first row is the previous strip's last, un-filtered), unpacked by
Pillow (palette, transparency, bit depths as it always does) and reduced before the next strip is read."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: pixels decoded at a time (a strip of whole rows, at least the reduction factor's); a strip's working memory is a
#: few times this many bytes, whatever the image
STRIP_PIXELS = 1 << 18
#: the mode each strip is reduced in: averaging needs grey levels, not bits or palette indices
_REDUCE_MODE = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I"}
#: 8-bit colour types holding 1-4 bytes per pixel: the same rows read in one of them un-filter identically
_PROXY_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


class PngError(ValueError):
    """A PNG whose data is damaged (the message is one line)."""


@dataclass
class Layout:
    """What the chunks of a PNG say, nothing decoded."""

    width: int
    height: int
    depth: int
    colour: int
    interlaced: bool
    ihdr: bytes  # the IHDR chunk as stored, and the PLTE / tRNS chunks (their bytes kept for the strips)
    palette_chunks: list[bytes] = field(default_factory=list)
    idat: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of each IDAT's data
    exif: bytes = b""

    @property
    def pixel_bytes(self) -> float:
        return _CHANNELS.get(self.colour, 1) * self.depth / 8

    @property
    def row_bytes(self) -> int:
        return -(-self.width * _CHANNELS.get(self.colour, 1) * self.depth // 8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def layout(data: bytes) -> Layout | None:
    """The chunks of ``data`` (None when it is not a PNG); :class:`PngError` when they are damaged."""
    if not data.startswith(SIGNATURE):
        return None
    pos, out = len(SIGNATURE), None
    while pos + 12 <= len(data):
        (n,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if len(body) < n or len(data) < pos + 12 + n:
            raise PngError("truncated PNG chunk")
        if kind in (b"IHDR", b"PLTE", b"tRNS", b"IDAT") and \
                zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0]:
            raise PngError(f"broken PNG chunk {kind.decode('latin-1')!r} (checksum)")
        if kind == b"IHDR" and (out is not None or n != 13):
            raise PngError("broken PNG header")
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            out = Layout(w, h, depth, colour, bool(interlace), data[pos : pos + 12 + n])
        elif out is not None and kind in (b"PLTE", b"tRNS"):
            out.palette_chunks.append(data[pos : pos + 12 + n])
        elif out is not None and kind == b"IDAT":
            out.idat.append((pos + 8, n))
        elif out is not None and kind == b"eXIf":
            out.exif = b"Exif\x00\x00" + body
        elif kind == b"IEND":
            break
        pos += 12 + n
    if out is None or not out.idat:
        raise PngError("PNG without image data")
    return out


def orientation(lay: Layout) -> int:
    """The EXIF orientation of the PNG (1 when it has none)."""
    if not lay.exif:
        return 1
    exif = Image.Exif()
    try:
        exif.load(lay.exif)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the image is shown as stored
        return 1
    return int(exif.get(0x0112, 1) or 1)


def _strips(data: bytes, lay: Layout, rows: int):
    """Each strip of ``rows`` rows as its filtered bytes (a filter byte before each row), inflated as needed."""
    row_len, left, buf = 1 + lay.row_bytes, lay.height, bytearray()
    inflate = zlib.decompressobj()
    for off, n in lay.idat:
        pending = data[off : off + n]
        while pending and left:
            want = min(rows, left) * row_len
            try:
                buf += inflate.decompress(pending, want - len(buf))
            except zlib.error as e:
                raise PngError(f"broken PNG data ({e})".splitlines()[0]) from None
            pending = inflate.unconsumed_tail
            if len(buf) == want:
                yield bytes(buf)
                left -= want // row_len
                buf.clear()
    if left:
        raise PngError("truncated PNG data")


def _open_png(ihdr: bytes, extra: list[bytes], raw: bytes) -> Image.Image:
    png = SIGNATURE + ihdr + b"".join(extra) + _chunk(b"IDAT", zlib.compress(raw, 0)) + _chunk(b"IEND", b"")
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def reads_in_strips(lay: Layout) -> bool:
    """Whether :func:`decode_reduced` reads this PNG a strip at a time (not interlaced; at most 4 bytes a pixel)."""
    proxy_bpp = max(1, int(lay.pixel_bytes))
    return not lay.interlaced and proxy_bpp in _PROXY_TYPE and lay.row_bytes % proxy_bpp == 0


def decode_reduced(data: bytes, lay: Layout, factor: int) -> Image.Image | None:
    """The PNG ``data`` reduced ``factor`` times (box average; 1-bit and palette images become grey or RGBA first),
    decoded a strip at a time and upright; None for the PNGs it does not read this way (interlaced,
    16-bit colour), which the caller decodes whole. :class:`PngError` for damaged data."""
    if factor < 2 or not reads_in_strips(lay):
        return None
    proxy_bpp, rb = max(1, int(lay.pixel_bytes)), lay.row_bytes
    rows = max(factor, STRIP_PIXELS // lay.width // factor * factor)
    out, seed, y = None, b"", 0
    proxy_colour = _PROXY_TYPE[proxy_bpp]
    for strip in _strips(data, lay, rows):
        n = len(strip) // (1 + rb)
        try:  # un-filter: the rows read as 8-bit pixels of the same size, after the previous strip's last row
            head = struct.pack(">IIBBBBB", rb // proxy_bpp, n + bool(seed), 8, proxy_colour, 0, 0, 0)
            flat = _open_png(_chunk(b"IHDR", head), [], (b"\0" + seed if seed else b"") + strip).tobytes()
            seed, flat = flat[-rb:], flat[len(seed):]
            head = struct.pack(">IIBBBBB", lay.width, n, lay.depth, lay.colour, 0, 0, 0)
            rows_raw = b"".join(b"\0" + flat[i : i + rb] for i in range(0, len(flat), rb))
            part = _open_png(_chunk(b"IHDR", head), lay.palette_chunks, rows_raw)
        except (OSError, ValueError, SyntaxError) as e:
            raise PngError(f"broken PNG data ({type(e).__name__})") from None
        mode = _REDUCE_MODE.get(part.mode, part.mode)
        part = part.convert(mode) if mode != part.mode else part
        part = part.reduce(factor)
        if out is None:
            out = Image.new(mode, (-(-lay.width // factor), -(-lay.height // factor)))
        out.paste(part, (0, y))
        y += part.height
    assert out is not None  # _strips yields at least one strip or raises
    if method := _TRANSPOSE.get(orientation(lay)):
        out = out.transpose(method)
    return out
