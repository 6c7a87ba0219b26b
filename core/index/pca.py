"""PCA reduction for the forest of large catalogs (Annoy splits 1280-d data poorly; the graph holds its vectors in
memory; BENCHMARKS.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: catalogs with at least this many base vectors get an Annoy forest over PCA-reduced vectors
PCA_MIN_VECTORS = 200_000
PCA_DIM = 256
#: the hnswlib graph holds its vectors in private memory: 128-d keeps 10^6 of them with their links near 0.8 GB, and
#: its exact top-320 re-scored holds the true top-10 of real photos as well as 256-d does (0.994 against 0.996 at
#: 2x10^5; BENCHMARKS.md, issue 29)
GRAPH_PCA_DIM = 128
FIT_SAMPLE = 50_000


def pca(fit_on: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components dim x D) fitted on ``fit_on``; project with :func:`project`."""
    x = np.asarray(fit_on, np.float64)
    mu = x.mean(0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    return mu.astype(np.float32), vt[:dim].astype(np.float32)


def fit_sample(vectors: np.ndarray, dim: int = PCA_DIM, n: int = FIT_SAMPLE, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """PCA fitted on a seeded random sample of at most ``n`` rows (deterministic for the same vectors)."""
    rows = np.arange(len(vectors))
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
    return pca(np.asarray(vectors[rows]), min(dim, len(rows) - 1, vectors.shape[1]))


def project(x: np.ndarray, mu: np.ndarray, comps: np.ndarray, chunk: int = 100_000,
            out: Path | None = None) -> np.ndarray:
    """Centred, projected and L2-normalised rows of ``x`` (memory-mapped to ``out`` when given)."""
    arr = (np.lib.format.open_memmap(out, "w+", np.float32, (len(x), len(comps))) if out
           else np.empty((len(x), len(comps)), np.float32))
    for a in range(0, len(x), chunk):
        y = (np.asarray(x[a:a + chunk], np.float32) - mu) @ comps.T
        arr[a:a + chunk] = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return arr
