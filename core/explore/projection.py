"""UMAP projection of an index's live vectors to 2D, cached on disk and reused until its inputs change.

Size policy: up to :data:`MAX_FIT` points UMAP is fitted on all of them; above that it is fitted on a
random subsample of :data:`MAX_FIT` points and the remaining points are placed with ``transform``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.config.paths import cache_dir
from core.config.progress import Progress, Stages
from core.config.store import StoreError, new_generation, read_current, stale_key, write_json, writer_lock
from core.index import IndexBackend

#: above this many points, fit on a random subsample of this size and ``transform`` the rest
MAX_FIT = 20_000
METRICS = ("cosine", "euclidean", "correlation", "manhattan")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class UmapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    seed: int = 42

    def validate(self) -> UmapParams:
        if not 2 <= self.n_neighbors <= 200:
            raise ValueError(f"n_neighbors must be between 2 and 200 (got {self.n_neighbors})")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"min_dist must be between 0 and 1 (got {self.min_dist})")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)} (got {self.metric})")
        return self


@dataclass
class Projection:
    """2D coordinates of the index's live vectors (``vector_ids`` into ``index.items``) and the fitted UMAP."""

    coords: np.ndarray  # (n, 2) float32
    vector_ids: np.ndarray  # (n,) int64, rows of index.vectors
    manifest: dict
    path: Path
    reused: bool = False
    _reducer: object | None = None

    @property
    def reducer(self):
        if self._reducer is None:
            with open(self.path / "reducer.pkl", "rb") as f:
                self._reducer = pickle.load(f)  # noqa: S301 - our own cache, keyed and written by us
        return self._reducer

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Place new vectors (e.g. a query) on the map. 2D positions only approximate full-space distances."""
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        if v.shape[1] != self.manifest["dim"]:
            raise ValueError(f"vectors are {v.shape[1]}-d, the projection was fitted on {self.manifest['dim']}-d")
        return np.asarray(self.reducer.transform(v), np.float32)


def cache_key(index: IndexBackend, params: UmapParams, max_fit: int = MAX_FIT) -> str:
    raw = json.dumps([FORMAT_VERSION, str(index.root.resolve()), index.fingerprint, index.spec, index.dim,
                      asdict(params), max_fit])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def projection_dir(index: IndexBackend, params: UmapParams, max_fit: int = MAX_FIT) -> Path:
    return cache_dir() / "umap" / cache_key(index, params, max_fit)


def _expected_manifest(index: IndexBackend, params: UmapParams, max_fit: int) -> dict:
    return {"format": FORMAT_VERSION, "index_root": str(index.root.resolve()), "index_fingerprint": index.fingerprint,
            "embedder": index.spec, "dim": index.dim, "params": asdict(params), "max_fit": max_fit}


def _load_cached(d: Path, expected: dict) -> Projection | None:
    try:
        current = read_current(d)
        if current is None:
            return None
        gen, manifest = current
        if stale_key(manifest, expected):
            return None  # produced by something else: stale, never used
        arr = np.load(gen / "coords.npz")
        return Projection(arr["coords"], arr["vector_ids"], manifest, gen, reused=True)
    except (OSError, ValueError, KeyError, StoreError):
        return None


def project(index: IndexBackend, params: UmapParams | None = None, *, progress: Progress | bool = False,
            max_fit: int = MAX_FIT, force: bool = False) -> Projection:
    """The 2D map of ``index``: loaded from cache when index, embedder and parameters match, else fitted."""
    params = (params or UmapParams()).validate()
    d = projection_dir(index, params, max_fit)
    expected = _expected_manifest(index, params, max_fit)
    if not force and (hit := _load_cached(d, expected)) is not None:
        return hit
    ids = np.flatnonzero(index.alive)
    if len(ids) < 4:
        raise ValueError(f"a map needs at least 4 live images (the index has {len(ids)})")
    vecs = np.asarray(index.vectors[ids], np.float32)
    t0 = time.perf_counter()
    reducer, coords, fit_rows = fit_umap(vecs, params, max_fit=max_fit, progress=progress)
    seconds = time.perf_counter() - t0
    with writer_lock(d):
        with new_generation(d) as tmp:
            np.savez(tmp / "coords.npz", coords=coords, vector_ids=ids)
            with open(tmp / "reducer.pkl", "wb") as f:
                pickle.dump(reducer, f, protocol=pickle.HIGHEST_PROTOCOL)
            write_json(tmp / "manifest.json", {
                **expected, "n_points": int(len(ids)), "n_fit": int(fit_rows), "fit_seconds": round(seconds, 2),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    hit = _load_cached(d, expected)
    assert hit is not None
    hit.reused, hit._reducer = False, reducer
    return hit


def fit_umap(vecs: np.ndarray, params: UmapParams, *, max_fit: int = MAX_FIT, progress: Progress | bool = False):
    """Fit UMAP (on a subsample above ``max_fit`` rows) -> (reducer, (n, 2) coords, rows fitted on)."""
    import umap  # slow import (numba): only when a projection is really computed

    n = len(vecs)
    steps = 3 if n > max_fit else 2
    _tick(progress, 0, steps)
    reducer = umap.UMAP(n_neighbors=min(params.n_neighbors, n - 1), min_dist=params.min_dist,
                        metric=params.metric, random_state=params.seed, n_components=2,
                        n_jobs=1, verbose=False, tqdm_kwds={"disable": True})
    _tick(progress, 1, steps)
    if n <= max_fit:
        coords = reducer.fit_transform(vecs)
        _tick(progress, 2, steps)
        return reducer, np.asarray(coords, np.float32), n
    rng = np.random.default_rng(params.seed)
    fit_idx = np.sort(rng.choice(n, max_fit, replace=False))
    rest = np.setdiff1d(np.arange(n), fit_idx)
    coords = np.zeros((n, 2), np.float32)
    coords[fit_idx] = reducer.fit_transform(vecs[fit_idx])
    _tick(progress, 2, steps)
    coords[rest] = reducer.transform(vecs[rest])
    _tick(progress, 3, steps)
    return reducer, coords, max_fit


_warm_up: threading.Thread | None = None
_warm_lock = threading.Lock()


#: the warm-up's steps in a person's words, in order (its progress counts them)
WARM_UP_STEPS = ("loading the map's library", "preparing how a map is laid out", "preparing how a photo is placed")
#: the counts of the background warm-up, read by a page waiting for it (:func:`warm_up_in_background`)
WARM_UP = Stages()


def warm_up(progress: Progress | bool = False) -> None:
    """Compile UMAP's just-in-time code (a fit and a transform on a few random points): in a fresh process this
    compilation, not the fit, is most of a first map's time. ``progress`` counts :data:`WARM_UP_STEPS`."""
    n = len(WARM_UP_STEPS)
    _tick(progress, 0, n)
    import umap  # noqa: F401 - loading it (numba) is the first step

    _tick(progress, 1, n)
    x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    reducer, _, _ = fit_umap(x, UmapParams())
    _tick(progress, 2, n)
    reducer.transform(x[:2])
    _tick(progress, 3, n)


def warm_up_in_background() -> threading.Thread:
    """Start :func:`warm_up` once per process in a daemon thread; returns that thread. The app calls this once
    the first results are on screen (compiling holds the interpreter lock much of the time: started earlier, it
    would slow the first search), so that the first map it draws is quick."""
    global _warm_up
    with _warm_lock:
        if _warm_up is None:
            _warm_up = threading.Thread(target=warm_up, args=(WARM_UP.of("warm-up"),), daemon=True,
                                        name="umap-warm-up")
            _warm_up.start()
        return _warm_up


def compiled() -> bool:
    """Whether this process has compiled UMAP's code (:func:`warm_up` has finished): a map is then quick."""
    with _warm_lock:
        return _warm_up is not None and not _warm_up.is_alive()


def _tick(progress: Progress | bool, done: int, total: int) -> None:
    if callable(progress):
        progress(done, total)
    elif progress is True:
        labels = {0: "fitting UMAP", 1: "fitting UMAP", 2: "placing the remaining points"}
        if done < total:
            print(f"[{done}/{total}] {labels.get(done, '')}…", flush=True)
