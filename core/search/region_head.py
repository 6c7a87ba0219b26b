"""The productness head of region search: per 16-pixel cell of a photo, *is a product here* and *how central is
this cell in its product*, as linear read-outs of the frozen EfficientNet-Lite maps (stage 5 and the final map).

It is trained per index on scenes generated from that index's own catalog images (:mod:`core.data.scenes`,
seed :data:`TRAIN_SEED`, never the dev or test seeds), where every pixel's product is known: ridge regression on
the standardised features, closed form. The weights (a few kB) are cached under ``cache_dir()/regions/`` and
keyed by the catalog's content, so a changed catalog trains a new head.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from core.config.paths import cache_dir, slug
from core.config.progress import Progress
from core.config.store import atomic_write
from core.data.scenes import generate
from core.embedding.efficientnet import EfficientNetLiteEmbedder
from core.index import IndexBackend
from core.index.prepared import FOLDER, producer

HEAD_VERSION = 1
TRAIN_SEED = 1000
PARAMS = {"scenes": 120, "side": 640, "ridge": 0.01}


def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of a bilinear resize along one axis, sampled as torch's ``interpolate`` does with
    ``align_corners=False`` (pixel centres aligned; edges clamped)."""
    src = np.maximum((np.arange(n_out, dtype=np.float32) + 0.5) * np.float32(n_in / n_out) - 0.5, 0)
    lo = src.astype(np.int64)  # floor: src >= 0
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    w = np.zeros((n_out, n_in), np.float32)
    np.add.at(w, (np.arange(n_out), lo), 1 - frac)
    np.add.at(w, (np.arange(n_out), hi), frac)
    return w


def upsample(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(C, h, w)`` maps to ``(C, *shape)`` (the one resampling of training and inference;
    numpy, so that finding boxes with a cached model needs no torch)."""
    m = np.asarray(maps, np.float32)
    return bilinear_weights(m.shape[1], shape[0]) @ m @ bilinear_weights(m.shape[2], shape[1]).T


@dataclass
class ProductnessHead:
    """Two linear read-outs (foreground, centre) of the stage-5 map and of the upsampled final map."""

    w5: np.ndarray  # (C5, 2)
    wf: np.ndarray  # (Cf, 2)
    bias: np.ndarray  # (2,)

    def predict(self, s5: np.ndarray, fin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Foreground and centre maps on the stage-5 grid. Linear, so the final map's read-out is upsampled
        rather than its 1280 channels."""
        out = np.einsum("chw,ck->khw", s5, self.w5) + upsample(np.einsum("chw,ck->khw", fin, self.wf), s5.shape[1:])
        out += self.bias[:, None, None]
        return out[0], out[1]

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, w5=self.w5, wf=self.wf, bias=self.bias)
        atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> ProductnessHead:
        with np.load(path) as z:
            return cls(z["w5"], z["wf"], z["bias"])


def cell_features(s5: np.ndarray, fin: np.ndarray) -> np.ndarray:
    """(cells, C5 + Cf) features on the stage-5 grid."""
    x = np.concatenate([s5, upsample(fin, s5.shape[1:])], 0)
    return x.reshape(len(x), -1).T


def cell_targets(owner: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(cells, 2): the share of each cell covered by a product, and the mean centreness there (distance to the
    product's edge over its largest such distance: 1 at its centre, 0 at its outline)."""
    centre = np.zeros(owner.shape, np.float32)
    for i in np.unique(owner[owner >= 0]):
        m = owner == i
        d = ndimage.distance_transform_edt(m)
        centre[m] = d[m] / d.max()
    import torch  # training the head only

    maps = np.stack([(owner >= 0).astype(np.float32), centre])
    cells = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(maps)[None], shape)[0].numpy()
    return cells.reshape(2, -1).T


class RidgeSums:
    """The sums ridge regression needs (count, sums, ``XᵀX``, ``Xᵀy``), added one scene at a time: memory stays
    one ``F×F`` matrix instead of every cell of every scene, and the work is spread over the progress bar."""

    def __init__(self) -> None:
        self.n, self.sx, self.sy, self.xtx, self.xty = 0, 0.0, 0.0, 0.0, 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.n += len(x)
        self.sx = self.sx + x.sum(0)
        self.sy = self.sy + y.sum(0)
        self.xtx = self.xtx + x.T @ x
        self.xty = self.xty + x.T @ y

    def fit(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Ridge regression (``alpha`` per sample) on standardised features, returned as raw-feature weights and
        bias."""
        n = self.n
        mu, ym = self.sx / n, self.sy / n
        sd = np.sqrt(np.maximum(np.diag(self.xtx) / n - mu * mu, 0.0)) + 1e-6
        ztz = (self.xtx / n - np.outer(mu, mu)) / np.outer(sd, sd)
        zty = (self.xty / n - np.outer(mu, ym)) / sd[:, None]
        w = np.linalg.solve(ztz + alpha * np.eye(len(mu)), zty) / sd[:, None]
        return w, ym - mu @ w


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression on all rows at once (:class:`RidgeSums` in one step)."""
    sums = RidgeSums()
    sums.add(x, y)
    return sums.fit(alpha)


def train_head(catalog_root: str | Path, backbone: EfficientNetLiteEmbedder, *, seed: int = TRAIN_SEED,
               scenes: int = PARAMS["scenes"], side: int = PARAMS["side"], alpha: float = PARAMS["ridge"],
               progress: Progress | bool = False) -> ProductnessHead:
    """Fit the head on ``scenes`` generated scenes of the catalog's products; progress counts the scenes, each
    read and added to the regression (the solve at the end is a fraction of a second)."""
    sums = RidgeSums()
    gen = generate(catalog_root, seed=seed, n=scenes)
    for i, (img, _, owner, _) in enumerate(tqdm(gen, total=scenes, desc="productness head",
                                                disable=progress is not True)):
        s5, fin = backbone.photo_maps(img, side)
        sums.add(cell_features(s5, fin), cell_targets(owner, s5.shape[1:]))
        if callable(progress):
            progress(i + 1, scenes)
    w, b = sums.fit(alpha)
    c5 = len(s5)
    return ProductnessHead(w[:c5].astype(np.float32), w[c5:].astype(np.float32), b.astype(np.float32))


def head_path(index: IndexBackend, backbone: EfficientNetLiteEmbedder) -> Path:
    key = json.dumps([HEAD_VERSION, PARAMS, TRAIN_SEED, backbone.weights, index.manifest.get("catalog_fingerprint"),
                      str(Path(index.catalog_root).resolve())])
    return cache_dir() / "regions" / f"{slug(Path(index.root).name)}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def productness_head(index: IndexBackend, backbone: EfficientNetLiteEmbedder, *,
                     progress: Progress | bool = False) -> ProductnessHead:
    """The cached head for ``index``'s catalog: the one prepared beside the catalog while it matches (the
    sample's ships), else trained (about a minute on 2 cores) when missing."""
    path = head_path(index, backbone)
    if path.is_file():
        return ProductnessHead.load(path)
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            head = prepared_head(index.catalog_root, index.manifest.get("catalog_fingerprint"), backbone)
            (head or train_head(index.catalog_root, backbone, progress=progress)).save(path)
    return ProductnessHead.load(path)


def head_producer(catalog_fingerprint: str | None, backbone: EfficientNetLiteEmbedder) -> dict:
    """What a head depends on: its version, training settings and seed, the backbone and the catalog."""
    return {"version": HEAD_VERSION, "params": PARAMS, "seed": TRAIN_SEED, "backbone": producer(backbone),
            "catalog_fingerprint": catalog_fingerprint}


def prepared_head_path(catalog_root: str | Path, backbone: EfficientNetLiteEmbedder) -> Path:
    return Path(catalog_root) / FOLDER / f"productness-{slug(backbone.spec)}.npz"


def write_prepared_head(catalog_root: str | Path, catalog_fingerprint: str, backbone: EfficientNetLiteEmbedder,
                        progress: Progress | bool = False) -> Path:
    """Train the catalog's head and write it beside the catalog with what produced it (``python -m core
    prepare``)."""
    head = train_head(catalog_root, backbone, progress=progress)
    path = prepared_head_path(catalog_root, backbone)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, w5=head.w5, wf=head.wf, bias=head.bias,
             meta=np.array(json.dumps(head_producer(catalog_fingerprint, backbone))))
    atomic_write(path, buf.getvalue())
    return path


def prepared_head(catalog_root: str | Path, catalog_fingerprint: str | None,
                  backbone: EfficientNetLiteEmbedder) -> ProductnessHead | None:
    """The head prepared beside the catalog, or None when there is none or it was made for another catalog,
    backbone or training setting."""
    path = prepared_head_path(catalog_root, backbone)
    if not catalog_fingerprint or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["meta"])) != head_producer(catalog_fingerprint, backbone):
                return None
            return ProductnessHead(z["w5"], z["wf"], z["bias"])
    except (OSError, ValueError, KeyError):
        return None
