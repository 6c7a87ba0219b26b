"""A large PNG decoded a strip at a time (core/data/png_strips.py) gives the pixels the whole decode gives, reduced;
damaged data is one line; what it does not read this way (interlaced, 16-bit colour) is decoded whole as before."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data import png_strips
from core.data.images import MAX_WORK_AREA, ImageError, _to_rgb, image_size, open_image, whole_decode_bytes

W, H = 301, 203  # odd sizes: the last strip and the last column are partial


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _filtered(rows: np.ndarray, bpp: int) -> bytes:
    """Raw rows filtered with every PNG filter in turn (None, Sub, Up, Average, Paeth), row after row."""
    out, prior = [], np.zeros(rows.shape[1], np.int16)
    for y, row in enumerate(rows.astype(np.int16)):
        a = np.concatenate([np.zeros(bpp, np.int16), row[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int16), prior[:-bpp]])
        pa, pb, pc = np.abs(prior - c), np.abs(a - c), np.abs(a + prior - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, prior, c))
        kind = y % 5
        pred = [0, a, prior, (a + prior) // 2, paeth][kind]
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prior = row
    return b"".join(out)


def _png(rows: np.ndarray, width: int, depth: int, colour: int, bpp: int, extra: bytes = b"", interlace: int = 0,
         exif: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, len(rows), depth, colour, 0, 0, interlace)
    return (png_strips.SIGNATURE + _chunk(b"IHDR", ihdr) + extra + (_chunk(b"eXIf", exif) if exif else b"")
            + _chunk(b"IDAT", zlib.compress(_filtered(rows, bpp))) + _chunk(b"IEND", b""))


def _cases() -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    smooth = (np.add.outer(np.arange(H), np.arange(W)) % 256).astype(np.uint8)
    bits = np.packbits(noise[..., 0] > 100, axis=1)
    nibbles = (noise[..., 1] % 16).astype(np.uint8)
    packed4 = np.packbits(np.unpackbits(nibbles[..., None], axis=2)[..., 4:].reshape(H, -1), axis=1)
    palette = _chunk(b"PLTE", rng.integers(0, 256, 48, dtype=np.uint8).tobytes()) + _chunk(b"tRNS", bytes([0, 128]))
    wide = (smooth.astype(">u2") * 257).view(np.uint8).reshape(H, -1)
    return {
        "1-bit grey": _png(bits, W, 1, 0, 1),
        "4-bit palette, transparent": _png(packed4, W, 4, 3, 1, palette),
        "8-bit grey": _png(smooth, W, 8, 0, 1),
        "16-bit grey": _png(wide, W, 16, 0, 2),
        "8-bit RGB": _png(np.dstack([smooth, noise[..., 1], 255 - smooth]).reshape(H, -1), W, 8, 2, 3),
        "8-bit RGBA": _png(noise.reshape(H, -1), W, 8, 6, 4),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_strips_give_the_whole_decode_reduced(name, monkeypatch):
    data = _cases()[name]
    whole = Image.open(io.BytesIO(data))
    whole.load()  # Pillow's own decode of the whole image
    mode = png_strips._REDUCE_MODE.get(whole.mode, whole.mode)
    expected = _to_rgb((whole.convert(mode) if mode != whole.mode else whole).reduce(4))
    monkeypatch.setattr(png_strips, "STRIP_PIXELS", 3000)  # many strips (8 rows each)
    lay = png_strips.layout(data)
    assert png_strips.decode_reduced(data, lay, 4) is not None  # read a strip at a time, not whole
    got = open_image(data, draft_size=50)
    assert got.size == expected.size == (76, 51)
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_orientation_is_read_without_decoding_and_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # a quarter turn
    raw = exif.tobytes()
    data = _png(np.zeros((H, W), np.uint8), W, 8, 0, 1, exif=raw.removeprefix(b"Exif\x00\x00"))
    assert image_size(data) == (H, W)
    assert open_image(data, draft_size=50).size == (51, 76)


def test_what_is_not_read_in_strips_is_decoded_whole():
    interlaced = _png(np.zeros((H, W), np.uint8), W, 8, 0, 1, interlace=1)
    lay = png_strips.layout(interlaced)
    assert lay.interlaced and png_strips.decode_reduced(interlaced, lay, 4) is None
    wide_rgb = _png(np.zeros((H, W * 6), np.uint8), W, 16, 2, 6)
    assert png_strips.decode_reduced(wide_rgb, png_strips.layout(wide_rgb), 4) is None
    assert open_image(wide_rgb, draft_size=50).size == (76, 51)  # decoded whole, then reduced, as before


def _one_line(data: bytes) -> None:
    try:
        img = open_image(data, draft_size=20)
    except ImageError as e:
        assert "\n" not in str(e)
    else:
        assert img.mode == "RGB"


def test_damaged_data_is_one_line():
    data = _cases()["8-bit RGB"]
    start = data.index(b"IDAT") + 4
    for bad, what in [(data[: start + 500], "truncated"), (data[:start + 100] + b"\xff" + data[start + 101:],
                                                            "checksum")]:
        with pytest.raises(ImageError, match=what) as e:
            open_image(bad, draft_size=50)
        assert "\n" not in str(e.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2000), st.binary(min_size=1, max_size=8))
@example(0, b"\x07")  # a filter byte that is no filter
def test_fuzz_rows_under_valid_checksums(at, junk):
    """Any bytes in place of some of the inflated rows (checksums fixed up): an image or one line."""
    rows = np.zeros((H, W), np.uint8)
    raw = bytearray(_filtered(rows, 1))
    at = at % len(raw)
    raw[at : at + len(junk)] = junk
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0)
    _one_line(png_strips.SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(raw)))
              + _chunk(b"IEND", b""))


def test_a_long_strip_of_an_image_is_reduced_to_a_bounded_area():
    """450 x 142,000 pixels (64 MP, 1-bit, a few KB): keeping 480 pixels across would keep it whole (and 256 MB in
    RGB); it is reduced to at most MAX_WORK_AREA x 480² pixels, a strip at a time."""
    img = Image.new("1", (450, 142_000), 1)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = open_image(buf.getvalue(), draft_size=480)
    assert out.mode == "RGB" and out.width * out.height <= MAX_WORK_AREA * 480 * 480 and out.height > out.width
    assert out.getpixel((out.width // 2, out.height // 2)) == (255, 255, 255)


def test_what_a_whole_decode_costs_is_known_from_the_header():
    buf = io.BytesIO()
    Image.new("RGB", (400, 300)).save(buf, "JPEG")
    assert whole_decode_bytes(buf.getvalue()) == 0  # decoded at a reduced scale
    assert whole_decode_bytes(_cases()["1-bit grey"]) == 0  # read a strip at a time
    interlaced = _png(np.zeros((H, W), np.uint8), W, 8, 0, 1, interlace=1)
    assert whole_decode_bytes(interlaced) == W * H  # decoded whole: 1 byte a pixel
    gif = io.BytesIO()
    Image.new("P", (10_000, 6_000)).save(gif, "GIF")
    assert whole_decode_bytes(gif.getvalue()) == 60_000_000
    with pytest.raises(ImageError, match="not an image file"):
        whole_decode_bytes(b"not an image")
