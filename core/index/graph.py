"""The hnswlib graph an index can search instead of an Annoy forest (``forest: hnsw`` in the manifest): built
over the base vectors (PCA-reduced like the forest for large catalogs), searched with a beam of ``ef``."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

#: graph degree and construction beam (hnswlib's defaults for recall >= 0.98 on 10^6 vectors in ann-benchmarks): M 16
#: over full-dimension vectors (product recall@10 0.995 on real photos at 10^5); M 32 over PCA-reduced ones, where the
#: M-16 graph lost true neighbours of real photos (0.756 at 10^6; BENCHMARKS.md, issue 29)
M, M_REDUCED, EF_CONSTRUCTION = 16, 32, 200
#: below this many vectors the graph is built on one thread: the same vectors give the same graph
DETERMINISTIC_BELOW = 20_000


def build_graph(path: Path, reduced, m: int = M, seed: int = 1234, chunk: int = 65_536):
    """An inner-product hnswlib graph of degree ``m`` over the unit rows of ``reduced``, saved to ``path``; returns
    it."""
    import hnswlib

    n, dim = len(reduced), reduced.shape[1]
    graph = hnswlib.Index(space="ip", dim=dim)
    graph.init_index(max_elements=n, ef_construction=EF_CONSTRUCTION, M=m, random_seed=seed)
    threads = 1 if n < DETERMINISTIC_BELOW else -1
    for a in range(0, n, chunk):
        block = np.ascontiguousarray(reduced[a:a + chunk], np.float32)
        graph.add_items(block, np.arange(a, a + len(block)), num_threads=threads)
    graph.save_index(str(path))
    return graph


def hnsw_nearest(graph, aq: np.ndarray, n: int, ef: int, lock: threading.Lock, default_ef: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(row ids, inner products)`` of the ``n`` nearest graph vectors to ``aq`` with a beam of at least ``ef``
    (hnswlib widens it to ``n``). The beam is the graph's one setting: a call asking another changes it under
    ``lock`` and restores it."""
    n = min(n, graph.get_current_count())
    q = np.asarray(aq, np.float32)[None]
    for _ in range(3):
        try:
            if ef == default_ef:
                ids, dist = graph.knn_query(q, k=n, num_threads=1)
            else:
                with lock:
                    graph.set_ef(ef)
                    try:
                        ids, dist = graph.knn_query(q, k=n, num_threads=1)
                    finally:
                        graph.set_ef(max(default_ef, 1))
            return ids[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)
        except RuntimeError:  # fewer than n reachable at this beam: widen it
            ef = max(2 * ef, 2 * n)
    return np.zeros(0, np.int64), np.zeros(0, np.float32)
