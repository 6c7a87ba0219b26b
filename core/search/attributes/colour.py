"""Colour from pixels, without a model: dominant colours of the product matched to a named palette in CIELAB."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: name -> prototype sRGB colours (several shades per name; the nearest prototype decides)
PALETTE: dict[str, list[tuple[int, int, int]]] = {
    "red": [(255, 0, 0), (200, 30, 40), (150, 20, 30)],
    "orange": [(255, 140, 0), (240, 130, 20), (210, 100, 30)],
    "yellow": [(255, 255, 0), (240, 210, 40), (250, 230, 120)],
    "green": [(0, 200, 0), (40, 150, 60), (20, 90, 30), (130, 190, 60)],
    "teal": [(0, 128, 128), (20, 150, 150), (60, 190, 190)],
    "blue": [(0, 0, 255), (40, 70, 200), (20, 40, 120), (90, 140, 230)],
    "purple": [(128, 0, 128), (120, 50, 160), (80, 30, 110), (170, 110, 210)],
    "pink": [(255, 105, 180), (240, 120, 180), (250, 190, 210)],
    "brown": [(120, 70, 30), (150, 100, 60), (80, 50, 25)],
    "grey": [(128, 128, 128), (130, 130, 130), (90, 90, 90), (180, 180, 180)],
    "white": [(255, 255, 255), (240, 240, 235)],
    "black": [(0, 0, 0), (30, 30, 30)],
}

_D65 = np.array([0.95047, 1.0, 1.08883])
_M = np.array([[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])


def _linear(c: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 -> linear light."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_LINEAR_U8 = _linear(np.arange(256) / 255.0)  # the same for 8-bit pixels, by table


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) in 0..255 -> CIELAB (D65)."""
    rgb = np.asarray(rgb)
    lin = _LINEAR_U8[rgb] if rgb.dtype == np.uint8 else _linear(np.asarray(rgb, np.float64) / 255.0)
    xyz = lin @ _M.T / _D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


_NAMES = list(PALETTE)
_PROTO_NAME = np.array([i for i, n in enumerate(_NAMES) for _ in PALETTE[n]])
_PROTO_LAB = rgb_to_lab(np.array([c for n in _NAMES for c in PALETTE[n]]))
_PROTO_SQ = (_PROTO_LAB**2).sum(1)


class PixelColourScorer:
    """``score(image) -> {colour name: share}``: the product's colours, weighted to the centre.

    A uniform border (a studio background) is detected and its colour suppressed; the remaining
    pixels get a Gaussian centre weight and vote for the nearest palette colour (CIE76 distance).
    """

    name = "pixel_colour"
    input = "image"
    source = "pixels"

    def __init__(self, size: int = 64, centre_sigma: float = 0.35, bg_tolerance: float = 12.0,
                 bg_uniformity: float = 10.0):
        self.size, self.centre_sigma = size, centre_sigma
        self.bg_tolerance, self.bg_uniformity = bg_tolerance, bg_uniformity
        self.values = list(_NAMES)

    def weights(self, lab: np.ndarray) -> np.ndarray:
        """Per-pixel weight: centre Gaussian, zero on a uniform background colour."""
        h, w = lab.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        r2 = ((yy - (h - 1) / 2) / h) ** 2 + ((xx - (w - 1) / 2) / w) ** 2
        wt = np.exp(-r2 / (2 * self.centre_sigma**2))
        border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
        bg = np.median(border, axis=0)
        spread = np.median(np.sqrt(((border - bg) ** 2).sum(1)))
        if spread < self.bg_uniformity:  # a plain backdrop: drop the pixels of its colour
            near = ((lab - bg) ** 2).sum(-1) < self.bg_tolerance**2
            if (~near).mean() > 0.02:  # unless the "background" is the whole image
                wt = wt * ~near
        return wt

    def score(self, image: Image.Image) -> dict[str, float]:
        img = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        lab = rgb_to_lab(np.asarray(img))
        wt = self.weights(lab)
        px = lab.reshape(-1, 3)
        # nearest prototype in CIE76: argmin |p - q|^2 = argmin (|q|^2 - 2 p.q), |p|^2 being the same for every q
        nearest = _PROTO_NAME[(_PROTO_SQ[None] - 2 * px @ _PROTO_LAB.T).argmin(1)]
        votes = np.bincount(nearest, weights=wt.reshape(-1), minlength=len(_NAMES))
        votes = votes / max(votes.sum(), 1e-12)
        return {n: float(v) for n, v in zip(_NAMES, votes)}

    def score_many(self, images: list[Image.Image]) -> np.ndarray:
        """(N, len(values)) probabilities, in the order of :attr:`values`."""
        return np.array([[s[v] for v in self.values] for s in map(self.score, images)]).reshape(-1, len(self.values))
