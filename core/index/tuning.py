"""Search settings chosen when an index is built: on a held-out sample of the catalog's own vectors, the cheapest
Annoy search (``search_k``, then the number of candidates re-scored exactly) whose product recall@10 against exact
search reaches the target. The manifest records the choice with the recall it measured (``python -m core info``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from core.index.pca import project

K = 10
TARGET = 0.98
SAMPLE = 200
#: the grid, cheapest first: the forest's effort per query (Annoy: nodes inspected; hnswlib: the beam ``ef``), then
#: the candidates it returns, re-scored exactly on the stored vectors
ANNOY_EFFORTS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 400_000)
#: the graph's beam starts at 160: catalog vectors as queries are easier for a graph than shopper photos (at 10^5
#: products ef 40 reached 0.985 on them but 0.921 on grocery val photos; 160 gave 0.995), and the search is ~2 ms
#: of a ~70 ms query (BENCHMARKS.md, issue 29), so a wider beam costs nothing a user sees
HNSW_EFFORTS = (160, 320, 640, 1_280, 2_560)
CANDIDATES = (20, 40, 80, 160, 320, 640, 1_280, 2_560)


def reduced_candidates(n: int, views: int = 1, k: int = K) -> int:
    """The fewest candidates of a forest over PCA-reduced vectors re-scored on the full ones (``n`` base vectors,
    ``views`` per product): the reduced space ranks a shopper's photo less well than a catalog vector, more so as
    the catalog grows. Real grocery photos against the query bench's catalogs, PCA-128: the exact reduced top-320
    holds 0.994 of the true top-10 at 2x10^5 (the top-40 0.86, where held-out catalog vectors need 40), the top-640
    0.993 at 10^6 (the top-320 0.983; BENCHMARKS.md, issue 29). So ~320 up to 400,000 vectors, twice as many per
    four times the vectors beyond."""
    steps = math.ceil(math.log(n / 400_000, 4)) if n > 400_000 else 0
    return max(4 * k * views, 64) * 4 * 2 ** steps


def top_products(rows: np.ndarray, scores: np.ndarray, item_pid: np.ndarray, k: int) -> list[str]:
    """The ``k`` best products of scored vector rows, each by its best row."""
    out: list[str] = []
    seen: set[str] = set()
    for j in np.argsort(-scores, kind="stable"):
        pid = item_pid[rows[j]]
        if pid not in seen:
            seen.add(pid)
            out.append(pid)
            if len(out) == k:
                break
    return out


def exact_products(vectors, queries: np.ndarray, own: np.ndarray, item_pid: np.ndarray, k: int,
                   chunk: int = 65_536) -> list[list[str]]:
    """Exact top-``k`` products per query over all ``vectors``, leaving out the query's own row ``own``."""
    n = len(vectors)
    views = int(np.unique(item_pid, return_counts=True)[1].max()) if n else 1
    keep = min(n, (k + 1) * views)
    best_rows = np.zeros((len(queries), 0), np.int64)
    best = np.zeros((len(queries), 0), np.float32)
    for a in range(0, n, chunk):
        s = np.asarray(vectors[a:a + chunk], np.float32) @ queries.T  # (rows, queries)
        rows = np.broadcast_to(np.arange(a, a + len(s))[:, None], s.shape)
        s_all = np.concatenate([best, s.T], 1)
        r_all = np.concatenate([best_rows, rows.T], 1)
        top = np.argpartition(-s_all, min(keep, s_all.shape[1]) - 1, 1)[:, :keep]
        best = np.take_along_axis(s_all, top, 1)
        best_rows = np.take_along_axis(r_all, top, 1)
    out = []
    for j in range(len(queries)):
        m = best_rows[j] != own[j]
        out.append(top_products(best_rows[j][m], best[j][m], item_pid, k))
    return out


def choose(search, efforts: list[int], pca: tuple[np.ndarray, np.ndarray] | None, vectors, item_pid: np.ndarray,
           *, k: int = K, target: float = TARGET, sample: int = SAMPLE, seed: int = 0, min_candidates: int = 1
           ) -> dict:
    """The cheapest (effort, candidates) reaching ``target`` product recall@``k`` on ``sample`` catalog vectors used
    as queries (each one's own row left out of both lists); the best found when none reaches it. ``search(q, n,
    effort)``: the forest's ``n`` nearest row ids of a (reduced) query at that effort (Annoy's ``search_k``,
    hnswlib's ``ef``), whose first ``c`` are its ``c`` nearest; ``vectors``: the forest's rows at full dimension
    (re-scoring), ``pca``: the forest's reduction. Efforts are tried cheapest first, then candidate counts up to
    the effort, from the first of :data:`CANDIDATES` at least ``min_candidates`` (that one also below the effort:
    hnswlib widens its beam to the count asked)."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    own = np.sort(rng.choice(n, min(sample, n), replace=False))
    queries = np.asarray(vectors[own], np.float32)
    truth = exact_products(vectors, queries, own, item_pid, k)
    aq = project(queries, *pca) if pca is not None else queries
    best: dict = {}
    first = next((c for c in CANDIDATES if c >= min_candidates), min_candidates)
    for effort in efforts:
        cands = [c for c in CANDIDATES if first <= c <= min(effort, n)] or [min(first, n)]
        t0 = time.perf_counter()
        got = [np.asarray(search(aq[j], cands[-1], effort), np.int64) for j in range(len(own))]
        ms = (time.perf_counter() - t0) * 1e3 / len(own)
        scored = [(g, np.asarray(vectors[g], np.float32) @ queries[j]) for j, g in enumerate(got)]
        for c in cands:
            hits = 0
            for j, (g, s) in enumerate(scored):
                m = g[:c] != own[j]
                hits += len(set(top_products(g[:c][m], s[:c][m], item_pid, k)) & set(truth[j]))
            recall = hits / max(1, sum(len(t) for t in truth))
            setting = {"k": k, "search_k": int(effort), "candidates": int(c), "recall": round(recall, 4),
                       "target": target, "queries": len(own), "forest_ms": round(ms, 2)}
            if recall >= target:
                return {**setting, "reached": True}
            if recall > best.get("recall", -1.0):
                best = setting
    return {**best, "reached": False}
