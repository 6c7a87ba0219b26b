"""``python -m core bench [--quick] [--out BENCHMARKS.md]``: speed and memory, side by side in one run.

Sections: embedding throughput on real JPEGs (decode included), end-to-end query latency (image bytes in,
ranked products out) on catalogs grown with synthetic vectors, ANN libraries against exact search, UMAP,
region search (several products per photo) on generated scenes, and the app's own latency against its goals
(:mod:`benchmarks.app`).
Heavy cases run in a fresh process each so resident memory is theirs alone. Synthetic vectors are drawn
around real embeddings with the real covariance (see :func:`benchmarks.common.synthetic_vectors`), so
neighbourhoods have the structure of real data rather than of uniform noise.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import (
    K,
    Table,
    cpu_seconds,
    dir_mb,
    exact_topk,
    in_fresh_process,
    labels_of,
    machine_facts,
    real_images,
    render,
    rss_mb,
    synthetic_vectors,
)
from core.config.store import atomic_write
from core.evaluation.metrics import first_relevant, neighbour_recall, recall_at, relevance
from core.index.pca import pca, project


# ---------------------------------------------------------------- 1. embedding throughput
def bench_embedding(quick: bool, images: list[Path], source: str) -> Table:
    import torch

    from core.config.runtime import cpu_count
    from core.data.images import open_image
    from core.embedding.batch import embed_sources
    from core.embedding.efficientnet import EfficientNetLiteEmbedder

    n = 64 if quick else 256
    imgs = (images * (1 + n // max(1, len(images))))[:n]
    t = Table(f"Embedding throughput ({n} real JPEGs from {source}, decode + preprocessing included)",
              ["embedder", "backend", "pipeline", "batch", "intra-op threads", "img/s", "img per CPU-s",
               "sys share", "load (1 min)"])
    cores = cpu_count()
    threads = [cores] if quick else sorted({1, cores})
    # (spec, backend, batch, worker threads, intra-op threads: ONNX sessions use 1 and run batches in parallel)
    cases = [(spec, "onnx", b, th, 1) for spec in ("efficientnet-lite0", "efficientnet-lite0:int8")
             for b in ([32] if quick else [8, 32]) for th in threads]
    cases += [("efficientnet-lite0", "onnx", 32, cores, cores), ("efficientnet-lite0", "torch", 32, cores, cores)]
    if not quick:
        cases += [("efficientnet-lite2", "onnx", 32, cores, 1), ("efficientnet-lite2", "torch", 32, cores, cores)]
    models: dict[tuple, object] = {}
    torch_threads = torch.get_num_threads()
    for spec, backend, bs, th, intra in cases:
        key = (spec, backend, intra)
        if key not in models:
            models[key] = EfficientNetLiteEmbedder(spec, backend=backend, threads=intra if backend == "onnx" else None)
        emb = models[key]
        torch.set_num_threads(intra)
        embed_sources(emb, imgs[:8], batch_size=8, workers=th)  # warm-up (and ONNX export, cached)
        load = os.getloadavg()[0]
        r0, c0, w0 = resource.getrusage(resource.RUSAGE_SELF), cpu_seconds(), time.perf_counter()
        embed_sources(emb, imgs, batch_size=bs, workers=th)
        wall, cpu = time.perf_counter() - w0, cpu_seconds() - c0
        sys_s = resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0.ru_stime
        how = (f"{th} batches in parallel, 1 thread each" if emb.parallel_batches
               else f"{th} decode threads, next batch decoded during the forward pass")
        t.add(spec, emb.backend, how, bs, intra, n / wall, n / cpu, sys_s / max(cpu, 1e-9), load)
    # the plain per-image loop the issue started from: torch, one image at a time, default settings
    emb = models[("efficientnet-lite0", "torch", cores)]
    emb.backend = "torch"
    torch.set_num_threads(cores)
    m = 32 if quick else 96
    c0, w0 = cpu_seconds(), time.perf_counter()
    for p in imgs[:m]:
        emb.embed_images([open_image(p)])
    wall, cpu = time.perf_counter() - w0, cpu_seconds() - c0
    t.add("efficientnet-lite0", "torch", "per-image loop, full-size decode", 1, cores, m / wall, m / cpu, "",
          os.getloadavg()[0])
    torch.set_num_threads(torch_threads)
    t.notes += ["img/s is wall-clock on this machine as it was at the time (shared with other jobs); "
                "img per CPU-s is throughput per busy core, less sensitive to contention than wall-clock but not "
                f"immune (shared caches, preempted threads); x{cores} cores bounds what an idle machine reaches.",
                "onnx = ONNX Runtime (exported from the torch model, equal within 1e-4: tests/test_bench.py); "
                ":int8 = its int8 model (core/embedding/int8.py; vectors against fp32: next table)."]
    return t


def recall_sets(quick: bool) -> list[tuple[str, list[Path], list[str], list[Path], list[str]]]:
    """(name, catalog images, their labels, query images, their labels): the sample catalog against its queries,
    and grocery's train photos against its val photos where the dataset is here."""
    import csv

    from core.config.paths import DATASETS, SAMPLE_CATALOG

    def rows(name: str) -> list[tuple[Path, str]]:
        with open(SAMPLE_CATALOG / name, newline="") as f:
            return [(SAMPLE_CATALOG / r["image"], r["product_id"]) for r in csv.DictReader(f)]

    cat, qs = rows("catalog.csv"), rows("queries.csv")
    out = [("sample catalog (product)", [p for p, _ in cat], [i for _, i in cat], [p for p, _ in qs],
            [i for _, i in qs])]
    g = DATASETS / "grocery" / "dataset"
    if (g / "train").is_dir() and (g / "val").is_dir():
        train = sorted(g.glob("train/**/*.jpg"))[:: 8 if quick else 1]
        val = sorted(g.glob("val/**/*.jpg"))[:: 4 if quick else 1]
        out.append(("grocery val (fine class)", train, labels_of(train, "grocery"), val, labels_of(val, "grocery")))
    return out


def bench_int8_recall(quick: bool) -> Table:
    """recall@1 of the int8 embedder against fp32's: the nearest catalog image (exact search) of each query."""
    from core.embedding.batch import embed_sources
    from core.embedding.efficientnet import EfficientNetLiteEmbedder

    t = Table("int8 against fp32: label recall@1 of the nearest catalog image (exact search)",
              ["query set", "queries", "catalog images", "fp32 recall@1", "int8 recall@1", "int8 - fp32",
               "same top-1 image", "cosine mean", "cosine min", "within 0.005"])
    models = {k: EfficientNetLiteEmbedder(s, backend="onnx") for k, s in
              (("fp32", "efficientnet-lite0"), ("int8", "efficientnet-lite0:int8"))}
    for name, cat, cat_labels, qs, q_labels in recall_sets(quick):
        vecs, r1, top = {}, {}, {}
        for k, emb in models.items():
            c, err = embed_sources(emb, cat, progress=True, desc=f"{k} {name} catalog")
            q, qerr = embed_sources(emb, qs, progress=True, desc=f"{k} {name} queries")
            if err or qerr:
                raise ValueError(f"{name}: {len(err) + len(qerr)} unreadable images")
            top[k] = (q @ c.T).argmax(1)
            r1[k] = float(np.mean(np.array(cat_labels)[top[k]] == np.array(q_labels)))
            vecs[k] = np.concatenate([c, q])
        cos = (vecs["fp32"] * vecs["int8"]).sum(1)
        diff = r1["int8"] - r1["fp32"]
        same = float(np.mean(top["int8"] == top["fp32"]))
        t.add(name, len(qs), len(cat), r1["fp32"], r1["int8"], f"{diff:+.3f}", same, float(cos.mean()),
              float(cos.min()), "yes" if abs(diff) <= 0.005 else "**no**")
    t.notes += ["Cosine: between the fp32 and int8 vectors of the same image, over catalog and query images.",
                "The int8 model's activation ranges come from every 4th sample catalog image (no labels, no query)."]
    return t


# ---------------------------------------------------------------- 2. query latency
def _time_queries(emb, idx, blobs: list[bytes], during=None) -> tuple[list, list, list, list, int]:
    """Each photo searched in turn: (total ms, embedding ms, top-K product ids, query vectors, how many ran while
    ``during()`` was true)."""
    from core.embedding.query import embed_query

    tot, emb_ms, found, qs, n_during = [], [], [], [], 0
    for b in blobs:
        busy = during is not None and during()
        t0 = time.perf_counter()
        q = embed_query(emb, b).vector
        t1 = time.perf_counter()
        hits = idx.search(q, K)[0]
        t2 = time.perf_counter()
        assert len(hits) == K
        tot.append((t2 - t0) * 1e3)
        emb_ms.append((t1 - t0) * 1e3)
        found.append([h.product_id for h in hits])
        qs.append(q)
        n_during += busy
    return tot, emb_ms, found, qs, n_during


def _query_case(index_dir: str, query_files: list[str], spec: str) -> dict:
    """Fresh process: load embedder + index like the app does, time image bytes -> ranked products: first right
    after opening (cold: the read pass that warms ``vectors.npy`` may still run), then warm, after it ended."""
    from core.embedding import load_embedder
    from core.embedding.query import embed_query
    from core.index.product_index import ProductIndex

    base = rss_mb()
    t0 = time.perf_counter()
    emb = load_embedder(spec)
    idx = ProductIndex.load(index_dir, emb)
    load_s = time.perf_counter() - t0
    blobs = [Path(f).read_bytes() for f in query_files]
    embed_query(emb, blobs[0])
    idx.search(embed_query(emb, blobs[1 % len(blobs)]).vector, K)
    cold, _, _, _, racing = _time_queries(emb, idx, blobs, lambda: not idx.wait_warm(0))
    t0 = time.perf_counter()
    idx.wait_warm()
    wait_s = time.perf_counter() - t0
    tot, emb_ms, found, qs, _ = _time_queries(emb, idx, blobs)
    r = rss_mb()  # before the exact searches below, which touch every page of the vectors
    t0 = time.perf_counter()
    for q in qs[:3]:  # the index's own exact path, timed on a few queries (each reads every vector)
        idx.search(q, K, exact=True)
    exact_ms = (time.perf_counter() - t0) * 1e3 / len(qs[:3])
    # the truth for all queries in one pass over the vectors (one vector per product in this catalog)
    top = exact_topk(idx.vectors, np.stack(qs), K)
    truth = [[idx.item_pid[i] for i in row] for row in top]
    return {"load_s": load_s, "p50": float(np.percentile(tot, 50)), "p99": float(np.percentile(tot, 99)),
            "embed_p50": float(np.percentile(emb_ms, 50)), "search_p50": float(np.percentile(
                np.array(tot) - np.array(emb_ms), 50)), "anon": r["anon"], "file": r["file"],
            "cold_p50": float(np.percentile(cold, 50)), "cold_p99": float(np.percentile(cold, 99)),
            "racing": racing, "wait_s": wait_s,
            "base_anon": base["anon"], "backend": getattr(emb, "backend", "torch"),
            "recall": neighbour_recall(found, truth, K), "exact_ms": exact_ms,
            "annoy_dim": idx.manifest.get("annoy_dim", idx.dim), "forest": _forest_name(idx.manifest),
            "settings": f"{t['search_k']:,} / {t['candidates']:,}" if (t := idx.settings) else "defaults",
            "tuned_recall": t.get("recall", "") if t else ""}


def _forest_name(m: dict) -> str:
    """Annoy (its trees), or the graph with its degree and construction beam."""
    if m.get("forest") == "hnsw":
        return "hnsw" + (f" M {m['graph_m']} efc {m['graph_ef_construction']}" if "graph_m" in m else "")
    return f"Annoy {m['trees']} trees"


def build_synthetic_index(out: Path, real: np.ndarray, real_items: list[dict], n: int, spec: str,
                          workdir: Path, root: Path) -> Path:
    """An index of ``n`` products: the real catalog vectors plus synthetic ones (one vector each)."""
    from core.embedding import load_embedder
    from core.index.product_index import ProductIndex

    n_syn = max(0, n - len(real))
    vec_path = workdir / f"syn-{n}-{real.shape[1]}.npy"
    syn = synthetic_vectors(real, n_syn, seed=n, out=vec_path) if n_syn else np.zeros((0, real.shape[1]))
    allv = np.lib.format.open_memmap(workdir / f"all-{n}.npy", "w+", np.float32, (len(real) + n_syn, real.shape[1]))
    allv[: len(real)] = real
    for a in range(0, n_syn, 100_000):
        allv[len(real) + a: len(real) + a + 100_000] = syn[a: a + 100_000]
    cats = ["fruit", "vegetables", "packages", "t-shirt", "dress", "shoe", "bag", "mug"]
    items = list(real_items) + [{"product_id": f"S{i:07d}", "image": f"synthetic/S{i:07d}.jpg"}
                                for i in range(n_syn)]
    products = {it["product_id"]: {"title": it["product_id"], "category": "real"} for it in real_items}
    products.update({f"S{i:07d}": {"title": f"Synthetic product {i}", "category": cats[i % len(cats)],
                                   "price": f"{5 + (i * 7919) % 9500 / 100:.2f}"} for i in range(n_syn)})
    ProductIndex.from_arrays(out, allv, items, products, load_embedder(spec).info(), catalog_root=root)
    del allv, syn
    vec_path.unlink(missing_ok=True)
    (workdir / f"all-{n}.npy").unlink(missing_ok=True)
    return out


def bench_query(quick: bool, real: np.ndarray, real_items: list[dict], queries: list[Path], root: Path,
                workdir: Path, spec: str, sizes: tuple[int, ...] | None = None, reuse: bool = False) -> Table:
    sizes = sizes or ((5_000,) if quick else (10_000, 100_000, 1_000_000))
    nq = 20 if quick else 200
    qfiles = [str(p) for p in (queries * (1 + nq // max(1, len(queries))))[:nq]]
    t = Table(f"End-to-end query latency ({nq} real query photos: JPEG bytes in, top-{K} products out)",
              ["products", "p50 ms", "p99 ms", "embed p50 ms", "search p50 ms", "cold p50 / p99 ms",
               "queries during read pass", "index build s", "load s",
               "RSS anon MB", "RSS file MB", "backend", "forest", "forest dim",
               "effort / candidates (chosen at build)", "build-time recall@10", "product recall@10 vs exact",
               "exact search ms", "speed-up vs exact"])
    for n in sizes:
        d = workdir / f"index-{n}"
        if reuse and (d / "BUILD_SECONDS").is_file():  # built by an earlier run with this --workdir
            build_s = float((d / "BUILD_SECONDS").read_text())
            t.notes.append(f"The {n:,} index was built by an earlier run in the same --workdir (--reuse-index): its "
                           "build time is that run's.")
        else:
            t0 = time.perf_counter()
            in_fresh_process(build_synthetic_index, d, real, real_items, n, spec, workdir, root)
            build_s = time.perf_counter() - t0
        r = in_fresh_process(_query_case, str(d), qfiles, spec)
        t.add(n, r["p50"], r["p99"], r["embed_p50"], r["search_p50"], f"{r['cold_p50']:.1f} / {r['cold_p99']:.1f}",
              r["racing"], build_s, r["load_s"], r["anon"], r["file"],
              r["backend"], r["forest"], r["annoy_dim"], r["settings"], r["tuned_recall"], r["recall"], r["exact_ms"],
              r["exact_ms"] / max(r["search_p50"], 1e-3))
        print(f"query {n:,}: " + ", ".join(f"{c} {v}" for c, v in zip(t.columns, t.rows[-1])), flush=True)
        (d / "BUILD_SECONDS").write_text(f"{build_s:.1f}")  # the ANN section reuses this index
    t.notes += ["One query at a time in a fresh process that loads the embedder and the index as the app does. "
                "p50 / p99 are warm: timed after the read pass that warms vectors.npy on open has ended. Cold: "
                "the same photos timed first, right after opening (the read pass, of the whole file, may still "
                "run: 'queries during read pass' of them started while it did). RSS after the queries: anon = "
                "private memory, file = memory-mapped index pages (page cache, "
                "shared and reclaimable).",
                "Catalog = real images' vectors plus synthetic vectors around them (one image per product).",
                "Product recall@10 vs exact: share of the top-10 products of the same search with exact=True; "
                "exact search ms is that search (numpy scores over all vectors plus the per-product aggregation "
                "in Python, slower than the bare matrix product of the ANN table); forest dim below 1280 = the "
                "forest of a large catalog is built over PCA-reduced vectors, its candidates (at least 320 there, "
                "640 from 400,000: tuning.reduced_candidates) re-scored on the full vectors.",
                "forest: Annoy, or an hnswlib graph from 50,000 to 200,000 vectors (M = its degree, efc = its "
                "construction beam); effort / candidates: the settings the build "
                "chose (core/index/tuning.py; effort = Annoy search_k or hnswlib ef), the cheapest whose product "
                "recall@10 on 200 held-out catalog vectors reaches 0.98 (build-time recall); load s includes "
                "copying the forest to the process's private copy (Annoy: its pages mapped in, warm)."]
    return t


# ---------------------------------------------------------------- 3. ANN libraries
def _ann_build(method: str, params: dict, data_path: str, out: str) -> dict:
    data = np.load(data_path, mmap_mode="r")
    n, d = data.shape
    t0 = time.perf_counter()
    if method == "annoy":
        from annoy import AnnoyIndex

        ix = AnnoyIndex(d, "angular")
        ix.set_seed(1234)
        for i in range(n):
            ix.add_item(i, data[i])
        ix.build(params["trees"], n_jobs=-1)
        ix.save(out)
    elif method == "hnswlib":
        import hnswlib

        ix = hnswlib.Index(space="ip", dim=d)
        ix.init_index(max_elements=n, M=params["M"], ef_construction=params["efc"], random_seed=1234)
        for a in range(0, n, 50_000):
            ix.add_items(np.asarray(data[a:a + 50_000]), np.arange(a, min(n, a + 50_000)))
        ix.save_index(out)
    elif method == "faiss-ivf":
        import faiss

        rng = np.random.default_rng(0)
        train = np.asarray(data[np.sort(rng.choice(n, min(n, 50 * params["nlist"]), replace=False))])
        q = faiss.IndexFlatIP(d)
        ix = faiss.IndexIVFFlat(q, d, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        ix.train(train)
        for a in range(0, n, 100_000):
            ix.add(np.asarray(data[a:a + 100_000]))
        faiss.write_index(ix, out)
    elif method == "faiss-hnsw":
        import faiss

        ix = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
        ix.hnsw.efConstruction = params["efc"]
        for a in range(0, n, 100_000):
            ix.add(np.asarray(data[a:a + 100_000]))
        faiss.write_index(ix, out)
    return {"build_s": time.perf_counter() - t0, "size_mb": dir_mb(Path(out))}


def _ann_search(method: str, path: str, dim: int, search: list[dict], queries: np.ndarray,
                truth: np.ndarray) -> list[dict]:
    """Fresh process: load the index as a server would, then one query at a time per search setting."""
    base = rss_mb()
    if method == "exact":
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        data = np.load(path, mmap_mode="r")
        def run(q, s): return np.argpartition(-(data @ q), K)[:K]  # noqa: E704
    elif method == "annoy":
        from annoy import AnnoyIndex

        ix = AnnoyIndex(dim, "angular")
        ix.load(path)
        def run(q, s): return np.asarray(ix.get_nns_by_vector(q, K, search_k=s["search_k"]))  # noqa: E704
    elif method == "hnswlib":
        import hnswlib

        ix = hnswlib.Index(space="ip", dim=dim)
        ix.load_index(path)
        ix.set_num_threads(1)
        def run(q, s): return ix.knn_query(q, K)[0][0]  # noqa: E704
    else:
        import faiss

        faiss.omp_set_num_threads(1)
        ix = faiss.read_index(path)
        def run(q, s): return ix.search(q[None], K)[1][0]  # noqa: E704
    out = []
    for s in search:
        if method == "hnswlib":
            ix.set_ef(s["ef"])
        elif method == "faiss-ivf":
            ix.nprobe = s["nprobe"]
        elif method == "faiss-hnsw":
            ix.hnsw.efSearch = s["ef"]
        run(queries[0], s)
        found, t0 = [], time.perf_counter()
        for q in queries:
            found.append(run(q, s))
        dt = time.perf_counter() - t0
        r = rss_mb()
        out.append({"recall": neighbour_recall(found, truth, K), "qps": len(queries) / dt,
                    "anon": r["anon"] - base["anon"], "file": r["file"] - base["file"]})
    return out


def ann_grid(n: int, quick: bool, dim: int) -> list[tuple[str, dict, list[dict]]]:
    """(method, build params, search settings) to compare at ``n`` vectors."""
    from core.index.product_index import auto_search_k, auto_trees

    if quick:
        return [("annoy", {"trees": 16}, [{"search_k": s} for s in (1000, 5000)]),
                ("hnswlib", {"M": 16, "efc": 100}, [{"ef": 50}]),
                ("faiss-ivf", {"nlist": 32}, [{"nprobe": 4}])]
    auto = auto_trees(n)
    ks = sorted({auto_search_k(n), 10_000, 50_000, 100_000 if n >= 1_000_000 else 30_000})
    trees = [auto] if n >= 1_000_000 else sorted({16, auto})
    grid = [("annoy", {"trees": tr}, [{"search_k": s} for s in ks]) for tr in trees]
    nlist = 1024 if n >= 1_000_000 else 256
    grid.append(("faiss-ivf", {"nlist": nlist}, [{"nprobe": p} for p in (8, 32, 64)]))
    if n * dim <= 100_000 * 1280 or dim <= 256:  # graph builds at 1e6 x 1280 take hours on 2 cores
        grid.append(("hnswlib", {"M": 16, "efc": 100}, [{"ef": e} for e in (50, 100, 200)]))
    if n * dim <= 100_000 * 1280:
        grid.append(("faiss-hnsw", {"M": 32, "efc": 80}, [{"ef": e} for e in (64, 128)]))
    return grid


def bench_ann(quick: bool, real: np.ndarray, real_q: np.ndarray, workdir: Path, budget_s: float) -> Table:
    sizes = [5_000] if quick else [1_000_000, 100_000]  # the largest first: it decides the goals
    nq = 50 if quick else 200
    t = Table(f"ANN vs exact search ({nq} real query vectors, recall@{K} against exact inner-product top-{K})",
              ["vectors", "dim", "method", "build params", "search", "recall@10", "QPS", "speed-up vs exact",
               "build s", "disk MB", "RSS anon MB", "RSS file MB"])
    low = min(256, len(real) - 1)  # PCA dimension (fewer real vectors than 256 only in --quick)
    mu, comps = pca(real, low)
    qsets = {real.shape[1]: real_q[:nq], low: project(real_q[:nq], mu, comps)}
    start = time.perf_counter()
    for n in sizes:
        from core.config.store import current_generation
        from core.index.product_index import auto_trees

        prebuilt = workdir / f"index-{n}"
        gen = current_generation(prebuilt) if (prebuilt / "CURRENT").is_file() else None
        if gen is not None:  # the query section's catalog: its vectors, and its Annoy forest for auto trees
            base = gen / "vectors.npy"
        else:
            base = workdir / f"ann-{n}-{real.shape[1]}.npy"
            synthetic_vectors(real, n, seed=n + 1, out=base)
        for dim in (real.shape[1], low):
            path = base if dim == real.shape[1] else workdir / f"ann-{n}-{dim}.npy"
            if dim != real.shape[1]:
                project(np.load(base, mmap_mode="r"), mu, comps, out=path)
            q = qsets[dim]
            truth = exact_topk(np.load(path, mmap_mode="r"), q)
            ex = in_fresh_process(_ann_search, "exact", str(path), dim, [{}], q, truth)[0]
            t.add(n, dim, "exact (numpy)", "", "", ex["recall"], ex["qps"], 1.0, 0.0, dir_mb(path), ex["anon"],
                  ex["file"])
            for method, bp, searches in ann_grid(n, quick, dim):
                if time.perf_counter() - start > budget_s:
                    t.notes.append(f"skipped {method} {bp} at {n}x{dim}: ANN time budget ({budget_s:.0f} s) spent")
                    continue
                out = str(workdir / f"{method}-{n}-{dim}.idx")
                if (gen is not None and path == base and method == "annoy" and bp["trees"] == auto_trees(n)
                        and not (gen / "pca.npz").exists()):
                    out = str(gen / "annoy.ann")  # built by ProductIndex (same seed, same trees)
                    b = {"build_s": float((prebuilt / "BUILD_SECONDS").read_text()), "size_mb": dir_mb(Path(out))}
                else:
                    b = in_fresh_process(_ann_build, method, bp, str(path), out)
                res = in_fresh_process(_ann_search, method, out, dim, searches, q, truth)
                for s, r in zip(searches, res):
                    t.add(n, dim, method, _kv(bp), _kv(s), r["recall"], r["qps"], r["qps"] / ex["qps"],
                          b["build_s"], b["size_mb"], r["anon"], r["file"])
                if gen is None or not out.startswith(str(gen)):
                    Path(out).unlink(missing_ok=True)
            if path != base:
                path.unlink(missing_ok=True)
        if gen is None:
            base.unlink(missing_ok=True)
        shutil.rmtree(prebuilt, ignore_errors=True)
    t.notes += ["One query at a time, one thread per query (what a single app request gets); each index is loaded "
                "in a fresh process; RSS is what loading and querying added (Annoy and exact are memory-mapped: "
                "their pages count as file-backed).",
                "Annoy with the automatic tree count reuses the query section's index: its build time is that "
                "of the whole ProductIndex (writing vectors and metadata included).",
                "256-d = PCA fitted on the real catalog vectors; the recall cost of that reduction on real "
                "queries is in the next table."]
    return t


def _kv(d: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


def bench_pca_cost(real: np.ndarray, real_labels: list[str], q: np.ndarray, q_labels: list[str],
                   source: str) -> Table:
    """What PCA costs on real data: neighbour overlap with full-d search and retrieval accuracy."""
    t = Table(f"Cost of PCA on real queries ({source}: {len(q)} query photos against {len(real)} catalog images)",
              ["dim", f"overlap of top-{K} with full-d", "label recall@1", f"label recall@{K}"])
    lab = np.array(real_labels)
    truth = exact_topk(real, q)
    for dim in (real.shape[1], 256, 128):
        if dim != real.shape[1] and dim >= min(real.shape):
            continue
        if dim == real.shape[1]:
            d, qq = real, q
        else:
            mu, comps = pca(real, dim)
            d, qq = project(real, mu, comps), project(q, mu, comps)
        top = exact_topk(d, qq)
        r = recall_at([first_relevant(relevance(lab[top[i]], q_labels[i])) for i in range(len(q))], (1, K))
        t.add(dim, neighbour_recall(list(top), truth, K), r["recall@1"], r[f"recall@{K}"])
    t.notes.append("Label recall: the nearest catalog image (or one of the top 10) shows the query's product class.")
    return t


# ---------------------------------------------------------------- 4. UMAP
def _umap_case(data_path: str, n: int) -> dict:
    from core.explore.projection import UmapParams, fit_umap  # the app's own projection path

    data = np.asarray(np.load(data_path, mmap_mode="r")[:n])
    t0 = time.perf_counter()
    _, _, n_fit = fit_umap(data, UmapParams())
    return {"s": time.perf_counter() - t0, "n_fit": n_fit}


def bench_umap(quick: bool, real: np.ndarray, workdir: Path) -> Table:
    sizes = [2_000] if quick else [10_000, 50_000]
    t = Table("UMAP to 2-d (the app's fit_umap: cosine, n_neighbors=15)", ["points", "dim", "fitted on", "seconds"])
    path = workdir / "umap.npy"
    synthetic_vectors(real, max(sizes), seed=7, out=path)
    for n in sizes:
        r = in_fresh_process(_umap_case, str(path), n)
        t.add(n, real.shape[1], r["n_fit"], r["s"])
    t.notes.append("Each size in a fresh process, so times include numba's just-in-time compilation (~10-20 s), "
                   "as a first projection in the app does.")
    path.unlink(missing_ok=True)
    return t


# ---------------------------------------------------------------- 5. regions
def bench_regions(quick: bool, workdir: Path) -> Table:
    """Several products per photo on generated scenes of the sample catalog: dev and test sets."""
    from core.config.paths import SAMPLE_CATALOG
    from core.data.catalog import load_catalog
    from core.data.scenes import DEV_SEED, TEST_SEED, write_scenes
    from core.embedding import DEFAULT_SPEC, load_embedder
    from core.evaluation.regions_eval import evaluate_regions
    from core.index.product_index import ProductIndex
    from core.search.engine import Searcher
    from core.search.regions import RegionSearcher

    n = 10 if quick else 30
    emb = load_embedder(DEFAULT_SPEC)
    idx, _ = ProductIndex.build(load_catalog(SAMPLE_CATALOG), emb, workdir / "regions-index")
    t0 = time.perf_counter()
    rs = RegionSearcher(Searcher(idx, emb))
    head_s = time.perf_counter() - t0
    t = Table(f"Several products per photo ({n} generated 800x600 scenes per set, 2-6 sample-catalog products each)",
              ["set (seed)", "ranking", "products", "touching", "box recall@0.5", "recall touching", "mean IoU",
               "boxes / photo", "box precision", "top-1 per found box", "top-5 per found box", "top-1 touching",
               "s / photo", "p90 s", "CPU-s / photo"])
    for name, seed in (("dev", DEV_SEED), ("test", TEST_SEED)):
        scenes = write_scenes(SAMPLE_CATALOG, workdir / f"scenes-{name}", seed=seed, n=n)
        for rank in ("static", "distance"):
            m = evaluate_regions(rs, scenes, k=5, rank=rank).metrics
            t.add(f"{name} ({seed})", rank, m["products"], m["touching"], m["box_recall@0.5"],
                  m["box_recall_touching"], m["mean_iou"], m["boxes_per_photo"], m["box_precision"],
                  m["top1_per_found_box"], m["top5_per_found_box"], m["top1_touching"], m["seconds_per_photo"],
                  m["seconds_p90"], m["cpu_seconds_per_photo"])
    t.notes += ["python -m core evaluate-regions on scene sets written by python -m core scenes (seed 1 = dev, on "
                "which the box parameters were chosen; seed 2 = test). Recall: share of products whose box some "
                "found box overlaps with IoU >= 0.5 (one to one); mean IoU over all products (a miss counts its "
                "best overlap); top-k: the product is among the first k hits of its found box.",
                "s / photo: wall-clock per photo (decode, backbone maps, boxes, letterboxed crop embeddings, one "
                "search per box); CPU-s / photo: the process's CPU time per photo, less sensitive to other jobs.",
                f"Productness head: trained for this index on first use in {head_s:.0f} s (cached afterwards)."]
    return t


# ---------------------------------------------------------------- driver
@dataclass
class Inputs:
    """What the sections share, made once when a section first asks: the real images and their vectors."""

    quick: bool
    tmp: Path
    ann_budget_s: float
    query_sizes: tuple[int, ...] | None = None
    served_driver: str = "websocket"
    reuse_index: bool = False
    _images: tuple | None = None
    _vectors: dict | None = None

    def images(self) -> tuple[list[Path], list[Path], str]:
        if self._images is None:
            cat, qs, source = real_images(self.quick)
            if self.quick:
                cat, qs = cat[:: max(1, len(cat) // 200)][:200], qs[:: max(1, len(qs) // 50)][:50]
            self._images = (cat, qs, source)
        return self._images

    def vectors(self) -> dict:
        """Catalog and query vectors of the real images (default embedder), the files that embedded, their items."""
        if self._vectors is None:
            from core.embedding import DEFAULT_SPEC, load_embedder
            from core.embedding.batch import embed_sources

            cat, qs, source = self.images()
            emb = load_embedder(DEFAULT_SPEC)
            real, err = embed_sources(emb, cat, batch_size=32, progress=True, desc="real catalog vectors")
            ok = [p for i, p in enumerate(cat) if i not in err]
            real_q, qerr = embed_sources(emb, qs, batch_size=32, progress=True, desc="real query vectors")
            qok = [p for i, p in enumerate(qs) if i not in qerr]
            root = Path(os.path.commonpath([str(p) for p in ok]))
            items = [{"product_id": f"R{i:05d}", "image": p.relative_to(root).as_posix()} for i, p in enumerate(ok)]
            self._vectors = dict(real=real, real_q=real_q, ok=ok, qok=qok, root=root, items=items, source=source,
                                 spec=DEFAULT_SPEC)
        return self._vectors


def _served(i: Inputs) -> list[Table]:
    from benchmarks.served import bench_served  # the app under load, in its own processes

    return [timed(bench_served, i.quick, None, None, 900.0, i.served_driver)]


def _embed(i: Inputs) -> list[Table]:
    cat, _, source = i.images()
    return [timed(bench_embedding, i.quick, cat, source), timed(bench_int8_recall, i.quick)]


def _app(i: Inputs) -> list[Table]:
    from benchmarks.app import bench_app

    return [timed(bench_app, i.quick, i.tmp)]


def _restart(i: Inputs) -> list[Table]:
    from benchmarks.restart import bench_restart

    return [timed(bench_restart, i.quick, i.tmp)]


def _query(i: Inputs) -> list[Table]:
    v = i.vectors()
    return [timed(bench_query, i.quick, v["real"], v["items"], v["qok"], v["root"], i.tmp, v["spec"], i.query_sizes,
                  i.reuse_index)]


def _ann(i: Inputs) -> list[Table]:
    v = i.vectors()
    return [timed(bench_pca_cost, v["real"], labels_of(v["ok"], v["source"]), v["real_q"],
                  labels_of(v["qok"], v["source"]), v["source"]),
            timed(bench_ann, i.quick, v["real"], v["real_q"], i.tmp, i.ann_budget_s)]


def _umap(i: Inputs) -> list[Table]:
    return [timed(bench_umap, i.quick, i.vectors()["real"], i.tmp)]


def _milvus(i: Inputs) -> list[Table]:
    from benchmarks.scale import bench_backends_sample, bench_milvus

    v = i.vectors()
    return [timed(bench_backends_sample, i.quick, i.tmp, v["spec"]),
            timed(bench_milvus, i.quick, v["real"], v["real_q"], i.tmp, v["spec"])]


def _ray(i: Inputs) -> list[Table]:
    from benchmarks.scale import bench_ray
    from core.embedding import DEFAULT_SPEC

    return [timed(bench_ray, i.quick, DEFAULT_SPEC)]


def _regions(i: Inputs) -> list[Table]:
    return [timed(bench_regions, i.quick, i.tmp)]


def _browser(i: Inputs) -> list[Table]:
    from benchmarks.browser import bench_browser  # the app in headless Chromium, in its own process

    return [timed(bench_browser)]


def _nomatch(i: Inputs) -> list[Table]:
    from benchmarks.nomatch import bench_nomatch

    return [timed(bench_nomatch, i.quick, i.tmp)]


#: section name -> what runs it, in the order a full run takes them (``benchmarks.cli.SECTIONS`` names the same)
SECTIONS: dict[str, Callable[[Inputs], list[Table]]] = {
    "served": _served, "embed": _embed, "app": _app, "restart": _restart, "query": _query, "ann": _ann, "umap": _umap,
    "milvus": _milvus, "ray": _ray, "regions": _regions, "nomatch": _nomatch, "browser": _browser,
}


def run(quick: bool = False, out: str | None = None, workdir: str | None = None,
        sections: tuple[str, ...] = ("embed", "query", "ann", "umap", "regions", "app", "milvus", "ray"),
        ann_budget_s: float = 900.0, query_sizes: tuple[int, ...] | None = None,
        served_driver: str = "websocket", reuse_index: bool = False) -> list[Table]:
    """Run the benchmark's ``sections`` (in :data:`SECTIONS` order); returns its tables and writes them as markdown
    to ``out`` if given, after each section too, so a long run keeps what it has measured."""
    facts = machine_facts()
    print(f"bench ({'quick' if quick else 'full'}) on {facts['nproc']} x {facts['cpu']}, load {facts['load']}")
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vps-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(quick, tmp, ann_budget_s, query_sizes, served_driver, reuse_index=reuse_index)
    tables: list[Table] = []
    if out:
        _partial.update(tables=[], out=out, facts=facts, quick=quick)
    try:
        for name, section in SECTIONS.items():
            if name in sections:
                tables += section(inputs)
    finally:
        if not workdir:
            shutil.rmtree(tmp, ignore_errors=True)
        _partial.clear()
        gc.collect()
    if out:
        atomic_write(out, render(tables, facts, quick))
        print(f"wrote {out}")
    return tables


def timed(fn: Callable[..., Table], *args) -> Table:
    print(f"== {fn.__name__}", flush=True)
    t0 = time.perf_counter()
    t = fn(*args)
    t.notes.append(f"Section time: {time.perf_counter() - t0:.0f} s.")
    print(f"== {fn.__name__}: {time.perf_counter() - t0:.0f} s", flush=True)
    if _partial:  # a long run keeps what it has measured so far
        _partial["tables"].append(t)
        atomic_write(_partial["out"], render(_partial["tables"], _partial["facts"], _partial["quick"]))
    return t


_partial: dict = {}

