"""The product index: Annoy over catalog image vectors, an exact delta set, tombstones, atomic saves.

Layout of an index folder: ``CURRENT`` names the live ``gen-*`` folder, which holds ``manifest.json``,
``vectors.npy`` (all vectors, read by row, never memory-mapped: files.py), ``items.json`` (one row per vector),
``products.json``, ``annoy.ann`` (over the first ``n_base`` vectors; for large catalogs over their PCA
reduction, ``pca.npz``) and ``removed.json`` (tombstoned vector ids).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from core.config.progress import Progress
from core.config.store import (
    StoreError,
    current_generation,
    link_or_copy,
    new_generation,
    write_json,
    writer_lock,
)
from core.data.catalog import Catalog, CatalogRow
from core.embedding import Embedder
from core.index import tuning
from core.index.backend import BuildReport, Hit, IndexBackend, embed_rows, row_scores
from core.index.files import (
    FORMAT_VERSION,
    GRAPH_FIELDS,
    ITEM_BYTES,
    METRIC,
    PRODUCTS_BYTES,
    REMOVED_BYTES,
    IndexStateError,
    VectorFile,
    check_items,
    check_products,
    check_removed,
    file_digest,
    read_annoy,
    read_hnsw,
    read_json,
    read_manifest,
    read_pca,
    read_vectors,
)
from core.index.graph import EF_CONSTRUCTION, M_REDUCED, M, build_graph, hnsw_nearest
from core.index.pca import GRAPH_PCA_DIM, PCA_DIM, PCA_MIN_VECTORS, fit_sample, project

#: plain index folders of at least this many base vectors get an hnswlib graph instead of an Annoy forest
HNSW_MIN_VECTORS = 50_000

__all__ = ["FORMAT_VERSION", "METRIC", "BuildReport", "Hit", "IndexStateError", "ProductIndex"]


def auto_trees(n: int) -> int:
    """More trees for larger catalogs: recall stays high while the index stays small."""
    if n < 10_000:
        return 16
    if n < 200_000:
        return 32
    return 64


def auto_search_k(n: int, k: int = 10) -> int:
    """Annoy candidates inspected per query: enough for recall@10 >= 0.95 at each size (BENCHMARKS.md)."""
    if n < 200_000:
        return max(10_000, 400 * k)
    return max(50_000, 1_000 * k)


class ProductIndex(IndexBackend):
    """The Annoy backend: one index folder. Load with :meth:`load`, create with :meth:`build`. Its forest is Annoy,
    or an hnswlib graph for large catalogs (:func:`forest_for`; always for :class:`~core.index.hnsw_index.HnswIndex`).
    """

    FOREST: str | None = None  # the forest new generations get (None: by size)

    def __init__(self, root: Path, gen: Path):
        """Read generation ``gen`` of ``root``; every file is checked against the manifest (files.py)."""
        self.root, self.gen, self.uri = root, gen, str(root)
        self.manifest: dict = read_manifest(gen)
        n = self.manifest["n_vectors"]
        self.n_base: int = self.manifest["n_base"]
        self.dim: int = self.manifest["dim"]
        self.spec: str = self.manifest["embedder"]["spec"]
        self.vectors: VectorFile = read_vectors(gen, n, self.dim)
        self.items: list[dict] = check_items(gen, read_json(gen, "items.json", ITEM_BYTES * n + (1 << 20)), n)
        self.products: dict[str, dict[str, str]] = check_products(
            gen, read_json(gen, "products.json", PRODUCTS_BYTES))
        self.removed: set[int] = check_removed(
            gen, read_json(gen, "removed.json", REMOVED_BYTES * n + (1 << 20)), n)
        self.pca: tuple[np.ndarray, np.ndarray] | None = read_pca(gen, self.dim, self.manifest["annoy_dim"])
        self.forest: str = self.manifest.get("forest", "annoy")  # over the first n_base vectors
        self.annoy: AnnoyIndex | None = read_annoy(gen, self.manifest) if self.forest == "annoy" else None
        self.graph = read_hnsw(gen, self.manifest) if self.forest == "hnsw" else None
        self._ef_lock = threading.Lock()
        if self.graph is not None:
            self.graph.set_ef(self.settings.get("search_k") or 64)
        self.item_pid = np.array([it["product_id"] for it in self.items], dtype=object)
        self.alive = np.ones(len(self.items), bool)
        self.alive[list(self.removed)] = False

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, root: str | Path, embedder: Embedder | str | None = None) -> ProductIndex:
        """Load the current generation (read safely: files.py). With ``embedder``, refuse one built by another."""
        root = Path(root)
        for attempt in range(5):
            gen = _current(root)
            if gen is None:
                raise IndexStateError(f"no index in {root} (build it: python -m core index --catalog DIR --out {root})")
            try:
                idx = cls(root, gen)
                break
            except FileNotFoundError as e:  # a writer published a newer generation and collected this one
                if _current(root) == gen:
                    raise IndexStateError(f"index {root}: {Path(e.filename or '?').name} is missing; the index is "
                                          "damaged, rebuild it") from None
                if attempt == 4:
                    raise
        if embedder is not None:
            idx.check_embedder(embedder)
        return idx

    @property
    def fingerprint(self) -> str:
        """Identifies this exact content (changes on every add, remove or compact)."""
        return self.gen.name

    def intact(self) -> bool:
        """False once a file this index reads during searches was truncated on disk (the Annoy forest is a private
        copy, so only ``vectors.npy`` can be): the caller should open or rebuild it again."""
        return self.vectors.intact()

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait (up to ``timeout`` s) for the read pass that warms ``vectors.npy`` on open; True once it has ended."""
        return self.vectors.wait_warm(timeout)

    @property
    def summary(self) -> str:
        m = self.manifest
        if self.forest == "hnsw":
            forest = "an hnsw graph" + (f" (M {m['graph_m']}, ef_construction {m['graph_ef_construction']})"
                                        if all(key in m for key in GRAPH_FIELDS) else "")
        else:
            forest = f"{m['trees']} trees"
        if self.pca is not None:
            forest += f" over PCA-{m['annoy_dim']}"
        line = f"{len(self)} products, {m['n_vectors']} vectors ({m['n_delta']} in the delta set), {forest}"
        t = self.settings
        if t:
            effort = "ef" if self.forest == "hnsw" else "search_k"
            line += (f"; search: {effort} {t['search_k']:,}, {t['candidates']:,} candidates re-scored exactly, product "
                     f"recall@{t['k']} {t['recall']:.3f} vs exact on {t['queries']} held-out catalog vectors"
                     + ("" if t.get("reached") else f" (below the {t['target']} target: the best setting tried)"))
        return line

    # ---------------------------------------------------------------- search
    def _exact(self, q: np.ndarray, ids: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
        """Scores of rows ``ids`` on the stored vectors, on this thread (:func:`row_scores`)."""
        if len(ids) == 0:
            return ids, np.zeros(0, np.float32)
        return ids, np.concatenate([row_scores(self.vectors[ids[a:a + chunk]], q) for a in range(0, len(ids), chunk)])

    @property
    def settings(self) -> dict:
        """The search settings chosen at build time (tuning.py), or {} for an index written before them."""
        return self.manifest.get("search") or {}

    def _nearest(self, aq: np.ndarray, n: int, effort: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Row ids of the forest's ``n`` nearest base vectors to the (reduced) query ``aq`` at ``effort``, with their
        exact scores where the forest holds the full vectors (a graph without PCA), else None."""
        if self.annoy is not None:
            return np.asarray(self.annoy.get_nns_by_vector(aq.tolist(), n, search_k=effort), np.int64), None
        ids, scores = hnsw_nearest(self.graph, aq, n, effort, self._ef_lock, self.settings.get("search_k") or 64)
        return ids, (scores if self.pca is None else None)

    def _candidates(self, q: np.ndarray, k: int, mask: np.ndarray, exact: bool, search_k: int) -> dict[str, tuple]:
        """product_id -> (score, vector id) of its best image among candidate vectors."""
        n = len(self.items)
        delta = np.arange(self.n_base, n)
        n_allowed = int(mask.sum())
        views = max(1, n // max(1, len(self.products)))
        if exact or (self.annoy is None and self.graph is None) or n_allowed <= max(4 * k * views, n // 20):
            ids, scores = self._exact(q, np.flatnonzero(mask))  # filters leave few vectors: exact search over them
        else:
            tuned = self.settings.get("candidates")
            if tuned:  # chosen at build time for k = settings["k"]
                fetch = max(tuned * k // max(1, self.settings.get("k", k)), 4 * k * views)
            else:
                fetch = max(4 * k * views, 64) * (4 if self.pca is not None else 1)
            fetch = min(self.n_base, fetch * max(1, n // max(1, n_allowed)))
            aq = project(q[None], *self.pca)[0] if self.pca is not None else q
            while True:
                got, exact_scores = self._nearest(aq, fetch, search_k)
                keep = (got >= 0) & (got < self.n_base)
                keep[keep] &= mask[got[keep]]
                got = got[keep]
                if len({self.item_pid[i] for i in got}) >= k or fetch >= self.n_base:
                    break
                fetch = min(self.n_base, fetch * 4)
            d_ids, d_scores = self._exact(q, delta[mask[delta]])
            if exact_scores is None:  # re-scored exactly on the stored vectors
                got, exact_scores = self._exact(q, got)
            else:
                exact_scores = exact_scores[keep]
            ids, scores = np.concatenate([got, d_ids]), np.concatenate([exact_scores, d_scores])
        best: dict[str, tuple] = {}
        for i, s in zip(ids.tolist(), scores.tolist()):
            pid = self.item_pid[i]
            if pid not in best or s > best[pid][0]:
                best[pid] = (s, i)
        return best

    def search(self, queries: np.ndarray, k: int = 10, where=None, *, exact: bool = False,
               search_k: int = -1, min_score: float | None = None) -> list[list[Hit]]:
        """Top-``k`` products per query vector (rows of ``queries``), best first."""
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if q.shape[1] != self.dim:
            raise IndexStateError(f"query vectors are {q.shape[1]}-d, the index is {self.dim}-d")
        mask = self.allowed_mask(where)
        search_k = search_k if search_k > 0 else self.settings.get("search_k") or (
            auto_search_k(self.n_base, k) if self.annoy is not None else 64)
        out = []
        for row in q:
            best = self._candidates(row, k, mask, exact, search_k)
            ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
            hits = [Hit(pid, round(float(s), 6), r + 1, self.image_path(i), dict(self.products.get(pid, {})),
                        round(float(s), 6))
                    for r, (pid, (s, i)) in enumerate(ranked) if min_score is None or s >= min_score]
            out.append(hits)
        return out

    # ---------------------------------------------------------------- writing
    @classmethod
    def build(cls, catalog: Catalog, embedder: Embedder, out: str | Path, *, trees: int | None = None,
              progress: Progress | bool = False, batch_size: int = 32,
              vectors: np.ndarray | None = None) -> tuple[ProductIndex, BuildReport]:
        """Embed every catalog image and write a fresh index to ``out`` (atomically); ``vectors``: one per catalog
        row, prepared ahead by the same embedder (:mod:`core.index.prepared`), taken instead of embedding."""
        out = Path(out)
        vecs, items, report = embed_rows(catalog, catalog.rows, embedder, progress, batch_size, vectors=vectors,
                                         errors={} if vectors is not None else None)
        if not items:
            raise IndexStateError(f"no catalog image could be embedded ({len(report.skipped)} skipped)")
        products = {r.product_id: dict(r.fields) for r in reversed(catalog.rows)}
        with writer_lock(out):
            _write(out, embedder.info(), catalog, [vecs], items, products, set(), len(items), trees,
                   forest=cls.FOREST)
        return cls.load(out, embedder), report

    @classmethod
    def from_arrays(cls, out: str | Path, vectors: np.ndarray, items: list[dict], products: dict[str, dict],
                    embedder_info: dict, *, catalog_root: str | Path = ".", catalog: Catalog | None = None,
                    trees: int | None = None) -> ProductIndex:
        """Write an index straight from precomputed unit vectors (one ``items`` row per vector); ``catalog``, when
        given, is recorded as :meth:`build` records it."""
        out = Path(out)
        if len(vectors) != len(items) or not len(items):
            raise IndexStateError(f"{len(vectors)} vectors for {len(items)} item rows")
        with writer_lock(out):
            _write(out, embedder_info, catalog, [vectors], items, products, set(), len(items), trees,
                   forest=cls.FOREST,
                   catalog_meta={"catalog_root": str(Path(catalog_root).resolve()), "catalog_fingerprint": None})
        return cls.load(out)

    def add(self, catalog: Catalog, embedder: Embedder, *, progress: Progress | bool = False,
            rows: list[CatalogRow] | None = None) -> tuple[ProductIndex, BuildReport]:
        """Embed only catalog rows not yet indexed; they join the exact delta set. No retraining."""
        self.check_embedder(embedder)
        with writer_lock(self.root):
            cur = type(self).load(self.root)  # re-read under the lock: another writer may have finished
            have = {(it["product_id"], cur.image_path(i)) for i, it in enumerate(cur.items) if cur.alive[i]}
            rows = [r for r in (rows if rows is not None else catalog.rows)
                    if (r.product_id, str(catalog.path(r))) not in have]
            vecs, items, report = embed_rows(catalog, rows, embedder, progress, 32, cur.catalog_root)
            products = dict(cur.products)
            products.update({r.product_id: dict(r.fields) for r in reversed(rows)})
            _write(self.root, cur.manifest["embedder"], catalog, [cur.vectors, vecs], cur.items + items,
                   products, cur.removed, cur.n_base, cur.manifest["trees"], reuse_annoy=cur.gen,
                   search=cur.settings)
        return type(self).load(self.root, embedder), report

    def remove(self, product_ids: list[str], catalog: Catalog | None = None) -> ProductIndex:
        """Hide products (tombstones); their vectors go at the next :meth:`compact`. Pass the edited
        ``catalog`` when its rows were removed too, so the index stays current for it."""
        with writer_lock(self.root):
            cur = type(self).load(self.root)
            unknown = [p for p in product_ids if p not in cur.products]
            if unknown:
                raise IndexStateError(f"unknown product id(s): {', '.join(unknown[:5])}")
            gone = set(product_ids)
            removed = cur.removed | {i for pid in gone for i in cur.vector_ids.get(pid, [])}
            _write(self.root, cur.manifest["embedder"], None, [cur.vectors], cur.items, cur.products,
                   removed, cur.n_base, cur.manifest["trees"], reuse_annoy=cur.gen, search=cur.settings,
                   catalog_meta=cur.manifest if catalog is None else
                   {**cur.manifest, "catalog_fingerprint": catalog.fingerprint()})
        return type(self).load(self.root)

    def compact(self, trees: int | None = None) -> ProductIndex:
        """Drop tombstoned vectors and rebuild Annoy over all stored vectors (no re-embedding)."""
        with writer_lock(self.root):
            cur = type(self).load(self.root)
            keep = np.flatnonzero(cur.alive)
            items = [cur.items[i] for i in keep]
            live = {it["product_id"] for it in items}
            products = {p: f for p, f in cur.products.items() if p in live}
            _write(self.root, cur.manifest["embedder"], None, [cur.vectors[keep]], items, products,
                   set(), len(items), trees, catalog_meta=cur.manifest, forest=type(self).FOREST)
        return type(self).load(self.root)


def _current(root: Path) -> Path | None:
    try:
        return current_generation(root)
    except StoreError as e:
        raise IndexStateError(str(e)) from None


def _save_vectors(path: Path, parts: list, dim: int, chunk: int = 65_536) -> int:
    """Write the rows of ``parts`` (arrays or row readers) as one float32 ``.npy``, a chunk at a time; the count."""
    n = sum(len(p) for p in parts)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
        for p in parts:
            for a in range(0, len(p), chunk):
                f.write(np.ascontiguousarray(p[a:a + chunk], np.float32).tobytes())
    return n


def _build_forest(tmp: Path, base, pids: np.ndarray, dim: int, trees: int, forest: str) -> tuple[int, dict, dict]:
    """The forest (Annoy, or an hnswlib graph) over ``base``, PCA-reduced from ``PCA_MIN_VECTORS`` vectors (Annoy to
    ``PCA_DIM``, the graph to ``GRAPH_PCA_DIM``), written to ``tmp``, and the search settings chosen on it
    (tuning.py): ``(forest dim, settings, graph fields of the manifest)``."""
    n_base, annoy_dim, pca = len(base), dim, None
    reduced = base
    want = GRAPH_PCA_DIM if forest == "hnsw" else PCA_DIM
    if n_base >= PCA_MIN_VECTORS and dim > want:  # Annoy splits 1280-d data poorly; the graph holds its vectors
        pca = fit_sample(base, want)
        np.savez(tmp / "pca.npz", mean=pca[0], components=pca[1])
        reduced, annoy_dim = project(base, *pca), len(pca[1])
    views = max(1, n_base // max(1, len(set(pids.tolist()))))
    floor = tuning.reduced_candidates(n_base, views) if pca is not None else max(4 * tuning.K * views, 64)
    if forest == "hnsw":
        m = M_REDUCED if pca is not None else M
        graph = build_graph(tmp / "hnsw.bin", reduced, m)
        del reduced
        lock = threading.Lock()

        def nearest(aq, n, ef):
            return hnsw_nearest(graph, aq, n, ef, lock, -1)

        efforts = [e for e in tuning.HNSW_EFFORTS if e <= max(tuning.HNSW_EFFORTS[0], 2 * n_base)]
        settings = tuning.choose(nearest, efforts, pca, base, pids, min_candidates=floor if pca is not None else 1)
        return annoy_dim, settings, {"graph_m": m, "graph_ef_construction": EF_CONSTRUCTION}
    ann = AnnoyIndex(annoy_dim, METRIC)
    ann.set_seed(1234)
    for a in range(0, n_base, 65_536):
        block = np.asarray(reduced[a:a + 65_536], np.float32)
        for i, v in enumerate(block, a):
            ann.add_item(i, v)
    ann.build(trees, n_jobs=-1)
    ann.save(str(tmp / "annoy.ann"))
    del reduced

    def search(aq, n, search_k):
        return ann.get_nns_by_vector(aq.tolist(), n, search_k=search_k)

    # never below the fixed settings of indexes written before the tuning (BENCHMARKS.md): a floor
    low = auto_search_k(n_base)
    efforts = [low] + [e for e in tuning.ANNOY_EFFORTS if low < e < n_base * trees]
    settings = tuning.choose(search, efforts, pca, base, pids, min_candidates=floor)
    ann.unload()
    return annoy_dim, settings, {}


def forest_for(n_base: int) -> str:
    """The forest a plain index folder gets: an hnswlib graph from ``HNSW_MIN_VECTORS`` base vectors (where Annoy
    at 1280-d misses recall@10 >= 0.98 within the latency goal), Annoy below that and again from
    ``PCA_MIN_VECTORS``, where the forest is over PCA-reduced vectors: there even the M-32 graph over PCA-128 loses
    true neighbours of real photos (product recall@10 0.944 at 10^6 with 640 candidates re-scored, 0.980 only at ef
    5,120; BENCHMARKS.md, issue 29)."""
    return "hnsw" if HNSW_MIN_VECTORS <= n_base < PCA_MIN_VECTORS else "annoy"


def _write(root: Path, embedder_info: dict, catalog: Catalog | None, parts: list, items: list[dict],
           products: dict, removed: set[int], n_base: int, trees: int | None, *, reuse_annoy: Path | None = None,
           catalog_meta: dict | None = None, search: dict | None = None, forest: str | None = None) -> None:
    """Write a new generation of the vectors in ``parts`` (arrays or row readers, in order). A new forest (``forest``,
    default by size) gets its search settings chosen (tuning.py); a reused one (``reuse_annoy``: the generation
    whose forest stays) keeps ``search``."""
    trees = trees or auto_trees(n_base)
    dim = int(embedder_info["dim"])
    with new_generation(root) as tmp:
        _save_vectors(tmp / "vectors.npy", parts, dim)
        write_json(tmp / "items.json", items)
        write_json(tmp / "products.json", products)
        write_json(tmp / "removed.json", sorted(removed))
        annoy_dim, extra = dim, {}
        if reuse_annoy is not None:
            old = read_manifest(reuse_annoy)
            forest = old.get("forest", "annoy")
            for name in ("annoy.ann", "hnsw.bin", "pca.npz"):
                if (reuse_annoy / name).exists():
                    link_or_copy(reuse_annoy / name, tmp / name)
            annoy_dim = old["annoy_dim"]
            extra = {key: old[key] for key in ("hnsw_bytes", "hnsw_digest", *GRAPH_FIELDS) if key in old}
        elif n_base:
            forest = forest or forest_for(n_base)
            base = parts[0][:n_base]  # a fresh forest is built over the first part only (build, compact)
            pids = np.array([it["product_id"] for it in items[:n_base]], dtype=object)
            annoy_dim, search, extra = _build_forest(tmp, base, pids, dim, trees, forest)
            if forest == "hnsw":
                size = (tmp / "hnsw.bin").stat().st_size
                with open(tmp / "hnsw.bin", "rb") as f:
                    extra.update(hnsw_bytes=size, hnsw_digest=file_digest(f.fileno(), size))
        meta = catalog_meta or {}
        annoy_bytes = (tmp / "annoy.ann").stat().st_size if (tmp / "annoy.ann").exists() else 0
        write_json(tmp / "manifest.json", {
            "format": FORMAT_VERSION,
            "embedder": embedder_info,
            "dim": dim,
            "metric": METRIC,
            "forest": forest or "annoy",
            "annoy_dim": annoy_dim,
            "annoy_bytes": annoy_bytes,
            **extra,
            "trees": trees,
            "search": search or None,
            "catalog_root": str(catalog.root.resolve()) if catalog else meta.get("catalog_root"),
            "catalog_fingerprint": catalog.fingerprint() if catalog else meta.get("catalog_fingerprint"),
            "n_vectors": len(items),
            "n_base": n_base,
            "n_delta": len(items) - n_base,
            "n_removed": len(removed),
            "n_products": len({it["product_id"] for i, it in enumerate(items) if i not in removed}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
