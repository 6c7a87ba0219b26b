"""Frozen backbone features, cached under ``cache_dir()/features`` keyed by embedder spec, view and file digest.

A *view* is ``orig`` (the image as the embedder sees it), ``flip`` (its input tensor mirrored), ``aug<k>``
(the k-th seeded random augmentation: crop, flip, colour jitter), ``shop<k>`` (the k-th synthetic shop photo of
a catalog picture, :mod:`core.data.shop_views`; the caller keys it by what made it) or ``zoom<NN>`` (the centre
NN% of the photo, a query zoom: :func:`core.embedding.decode.zoom`). Caching a few augmented copies per image
lets a CPU train a head with augmentation without running the backbone in the training loop.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from PIL import Image, ImageEnhance, ImageOps
from tqdm.auto import tqdm

from core.config.progress import Progress
from core.config.store import atomic_path
from core.data.catalog import file_digest
from core.embedding import Embedder
from core.embedding.batch import embed_sources
from core.embedding.decode import zoom

SAVE_EVERY = 512  # images between checkpoints of the cache file, so an interrupted run keeps its work


def cache_root(embedder: Embedder) -> Path:
    from core.config.paths import cache_dir, slug

    key = hashlib.sha1(repr(sorted(embedder.info().items())).encode()).hexdigest()[:10]
    return cache_dir() / "features" / f"{slug(embedder.spec)}-{key}"


def check_view(view: str) -> None:
    if view not in ("orig", "flip") and not view.startswith(("aug", "shop")) and zoom_of(view) is None:
        raise ValueError(f"unknown view {view!r} (orig, flip, aug<k>, shop<k>, zoom<NN>)")


def zoom_view(z: float) -> str:
    """The view name of centre zoom ``z`` (0.65 -> ``zoom65``)."""
    return f"zoom{round(z * 100)}"


def zoom_of(view: str) -> float | None:
    """The zoom of a ``zoom<NN>`` view (NN in 10..99), else None."""
    digits = view[4:] if view.startswith("zoom") else ""
    return int(digits) / 100 if digits.isdigit() and len(digits) == 2 and 10 <= int(digits) <= 99 else None


def augment(img: Image.Image, view: str, seed: str) -> Image.Image:
    """Deterministic view of ``img``: ``orig``, ``flip`` or ``aug<k>`` (seeded by ``seed`` and k)."""
    check_view(view)
    if view == "orig":
        return img
    if view == "flip":
        return ImageOps.mirror(img)
    rng = random.Random(f"{seed}:{view}")
    w, h = img.size
    s = rng.uniform(0.55, 1.0)  # area fraction kept
    ar = rng.uniform(3 / 4, 4 / 3)
    cw, ch = min(w, int(w * (s * ar) ** 0.5)), min(h, int(h * (s / ar) ** 0.5))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.3:
        img = img.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, expand=False, fillcolor=(255, 255, 255))
    return img


class FeatureStore:
    """digest -> feature vector for one (embedder, view), persisted as one ``.npz``."""

    def __init__(self, embedder: Embedder, view: str):
        self.embedder, self.view = embedder, view
        self.path = cache_root(embedder) / f"{view}.npz"
        self.data: dict[str, np.ndarray] = {}
        self._read()

    def _read(self) -> None:
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    if z["vecs"].shape[1:] == (self.embedder.dim,):
                        self.data.update(zip(z["digests"].tolist(), z["vecs"]))
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache is recomputed, never trusted

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            mine = dict(self.data)
            self.data = {}
            self._read()  # merge what another process wrote meanwhile
            self.data.update(mine)
            keys = sorted(self.data)
            dtype = getattr(self.embedder, "store_dtype", np.float32)  # large tap vectors: float16
            vecs = np.stack([self.data[k] for k in keys]) if keys else np.zeros((0, self.embedder.dim), dtype)
            with atomic_path(self.path) as tmp:
                np.savez(tmp, digests=np.array(keys), vecs=vecs.astype(dtype))


#: makes a view of a decoded image, seeded by its cache key: ``transform(image, key)``
Transform = Callable[[Image.Image, str], Image.Image]


def view_options(embedder: Embedder, view: str, digest_of: Callable[[int], str],
                 transform: Transform | None = None) -> dict:
    """The :func:`embed_sources` arguments that embed its sources seen as ``view``: ``orig`` exactly what it
    always does, ``flip`` that input tensor mirrored (the test-time flip), ``aug<k>`` the k-th augmentation of
    the image decoded at twice the input size (seeded by ``digest_of(source number)``), ``shop<k>``
    ``transform`` of that image (seeded the same way)."""
    check_view(view)
    if view.startswith("shop") and transform is None:
        raise ValueError(f"view {view!r} needs the transform that makes it")

    def prep(i: int, img: Image.Image) -> np.ndarray:
        if view.startswith("aug"):
            img = augment(img, view, digest_of(i))
        elif view.startswith("shop"):
            img = transform(img, f"{digest_of(i)}:{view}")
        x = embedder.pixels(img)
        return np.ascontiguousarray(x[..., ::-1]) if view == "flip" else x

    return {"preprocess": None if view == "orig" or zoom_of(view) else prep,
            "decode_size": embedder.image_size * (2 if view.startswith(("aug", "shop")) else 1)}


def cached_features(embedder: Embedder, paths: Sequence[str | Path], view: str = "orig", *,
                    batch_size: int = 32, progress: Progress | bool = False,
                    digests: Sequence[str] | None = None, transform: Transform | None = None
                    ) -> tuple[np.ndarray, dict[int, str]]:
    """(N, dim) unit vectors of ``paths`` seen as ``view`` (rows of unusable images are zero) and errors.
    ``digests`` are the cache keys (default: each file's digest); ``transform`` makes ``shop<k>`` views.

    Images not in the cache are embedded by :func:`embed_sources`, ``SAVE_EVERY`` at a time, each part saved."""
    check_view(view)
    paths = [Path(p) for p in paths]
    digests = list(digests) if digests is not None else [file_digest(p) for p in paths]
    store = FeatureStore(embedder, view)
    todo = [i for i, d in enumerate(digests) if d not in store.data]
    errors: dict[int, str] = {}
    if todo:
        bar = tqdm(total=len(todo), desc=f"features ({view})", unit="img", disable=progress is not True)
        for start in range(0, len(todo), SAVE_EVERY):
            part = todo[start : start + SAVE_EVERY]

            def report(done: int, _total: int, start: int = start) -> None:
                bar.update(start + done - bar.n)
                if callable(progress):
                    progress(start + done, len(todo))

            z = zoom_of(view)
            vecs, errs = embed_sources(embedder, [paths[i] for i in part], batch_size=batch_size, progress=report,
                                       crops=[zoom(z)] * len(part) if z else None,
                                       **view_options(embedder, view, lambda j, part=part: digests[part[j]],
                                                      transform))
            errors.update({part[j]: e for j, e in errs.items()})
            dtype = getattr(embedder, "store_dtype", np.float32)
            for i, v in zip([i for j, i in enumerate(part) if j not in errs], vecs):
                store.data[digests[i]] = v.astype(dtype)
            store.save()
        bar.close()
    out = np.zeros((len(paths), embedder.dim), np.float32)
    for i, d in enumerate(digests):
        if d in store.data:
            out[i] = store.data[d]
    return out, errors


def embed_cached(embedder: Embedder, paths: Sequence[str | Path], *, progress: Progress | bool = False,
                 digests: Sequence[str] | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """What ``embed_sources`` returns for ``paths`` (one row per usable image), from the feature cache.

    Works for a backbone embedder (its ``orig`` view) and for a :class:`HeadEmbedder` on one (the head applied
    to the cached vectors of its ``source``, the backbone's or those below its fine-tuned stages, with the
    mirrored view too when it uses test-time flips).
    """
    from core.embedding.head import HeadEmbedder

    paths = list(paths)
    digests = list(digests) if digests is not None else [file_digest(Path(p)) for p in paths]
    if not isinstance(embedder, HeadEmbedder):
        vecs, errors = cached_features(embedder, paths, "orig", progress=progress, digests=digests)
        return vecs[[i for i in range(len(paths)) if i not in errors]], errors
    base, errors = cached_features(embedder.source, paths, "orig", progress=progress, digests=digests)
    ok = [i for i in range(len(paths)) if i not in errors]
    with torch.inference_mode():
        out = torch.nn.functional.normalize(embedder.project(torch.from_numpy(base[ok])), dim=-1)
        if embedder.tta_flip:
            flip, _ = cached_features(embedder.source, paths, "flip", progress=progress, digests=digests)
            out = out + torch.nn.functional.normalize(embedder.project(torch.from_numpy(flip[ok])), dim=-1)
    from core.embedding.base import normalize

    return normalize(out.numpy()), errors
