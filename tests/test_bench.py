"""The benchmark machinery on tiny sizes (no timed assertions), ONNX = torch, index built from vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SAMPLE

from benchmarks import suite as bench
from core.data.images import open_image
from core.embedding.batch import embed_sources
from core.embedding.efficientnet import EfficientNetLiteEmbedder
from core.evaluation.metrics import neighbour_recall
from core.index.product_index import ProductIndex, auto_search_k, auto_trees


@pytest.fixture(scope="module")
def sample_vectors(embedder):
    paths = sorted((SAMPLE / "images").glob("*.jpg"))[:60]
    vecs, err = embed_sources(embedder, paths, batch_size=16)
    assert not err
    return vecs


def test_onnx_equals_torch(embedder):
    """The ONNX Runtime path gives the torch vectors within 1e-4, at several batch sizes."""
    pytest.importorskip("onnxruntime")
    paths = sorted((SAMPLE / "images").glob("*.jpg"))[:9] + sorted((SAMPLE / "queries").glob("*.jpg"))[:3]
    batch = torch.stack([embedder.preprocess(open_image(p, draft_size=224)) for p in paths])
    ref = EfficientNetLiteEmbedder("efficientnet-lite0", backend="torch")
    ort = EfficientNetLiteEmbedder("efficientnet-lite0", backend="onnx")
    want = ref.embed_tensors(batch)
    assert ref.backend == "torch"
    for bs in (1, 5, 12):
        got = np.concatenate([ort.embed_tensors(batch[i:i + bs]) for i in range(0, len(batch), bs)])
        assert ort.backend == "onnx"
        np.testing.assert_allclose(got, want, atol=1e-4)
    # differentiable torch forward stays available for training on top
    assert ort.forward_images(batch[:2]).shape == (2, 1280)


def test_bad_backend_is_one_line_error():
    with pytest.raises(ValueError, match="unknown inference backend"):
        EfficientNetLiteEmbedder("efficientnet-lite0", backend="tpu")


def test_synthetic_vectors_look_like_real(sample_vectors):
    syn = bench.synthetic_vectors(sample_vectors, 500, seed=1)
    assert syn.shape == (500, sample_vectors.shape[1]) and syn.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(syn, axis=1), 1, atol=1e-5)
    # each synthetic vector is close to some real one, far closer than random directions are
    assert np.median((syn @ sample_vectors.T).max(1)) > 0.5
    np.testing.assert_array_equal(syn, bench.synthetic_vectors(sample_vectors, 500, seed=1))


def test_exact_topk_and_recall(sample_vectors):
    q = sample_vectors[:7]
    top = bench.exact_topk(sample_vectors, q, k=5, chunk=13)  # chunks smaller than k and uneven
    brute = np.argsort(-(q @ sample_vectors.T), axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(top, 1), np.sort(brute, 1))
    assert neighbour_recall(list(brute), top, k=5) == 1.0
    assert neighbour_recall([b[::-1] for b in brute], top, k=5) == 1.0


def test_from_arrays_index_matches_build(sample_index, tmp_path):
    """An index written straight from vectors searches exactly like the one built from the catalog."""
    vecs = np.asarray(sample_index.vectors)
    idx = ProductIndex.from_arrays(tmp_path / "ix", vecs, sample_index.items, sample_index.products,
                                    sample_index.manifest["embedder"], catalog_root=sample_index.catalog_root)
    assert idx.items == sample_index.items and list(idx.item_pid) == list(sample_index.item_pid)
    q = vecs[::37]
    for exact in (False, True):
        a = sample_index.search(q, 10, exact=exact)
        b = idx.search(q, 10, exact=exact)
        assert [[(h.product_id, h.score, h.image) for h in r] for r in a] == \
               [[(h.product_id, h.score, h.image) for h in r] for r in b]
    with pytest.raises(ValueError):
        ProductIndex.from_arrays(tmp_path / "bad", vecs[:3], sample_index.items[:2], {}, {"dim": 1280})


def test_auto_parameters_grow_with_size():
    assert auto_trees(1_000) <= auto_trees(100_000) <= auto_trees(1_000_000)
    assert auto_search_k(1_000) <= auto_search_k(100_000) <= auto_search_k(1_000_000)


def test_quick_tables_are_well_formed(sample_vectors, tmp_path, monkeypatch):
    """The quick machinery at tiny sizes: every table has a header and full rows of figures."""
    real = sample_vectors
    t = bench.bench_pca_cost(real[:40], [str(i % 5) for i in range(40)], real[40:], [str(i % 5) for i in
                             range(20)], "sample")
    assert [r[0] for r in t.rows][0] == "1280"
    monkeypatch.setattr(bench, "ann_grid", lambda n, quick, dim: [
        ("annoy", {"trees": 4}, [{"search_k": 200}]), ("hnswlib", {"M": 8, "efc": 20}, [{"ef": 20}]),
        ("faiss-ivf", {"nlist": 4}, [{"nprobe": 2}])])
    monkeypatch.setattr(bench, "in_fresh_process", lambda fn, *a: fn(*a))  # same process: fast
    orig = bench.synthetic_vectors
    monkeypatch.setattr(bench, "synthetic_vectors", lambda r, n, **kw: orig(r, min(n, 400), **kw))
    ann = bench.bench_ann(True, real, real[:10], tmp_path, budget_s=600)
    methods = {r[2] for r in ann.rows}
    assert {"exact (numpy)", "annoy", "hnswlib", "faiss-ivf"} <= methods
    for row in ann.rows:
        assert len(row) == len(ann.columns)
        assert 0.0 <= float(row[5]) <= 1.0  # recall@10
    md = bench.render([t, ann], bench.machine_facts(), quick=True)
    assert "| vectors | dim | method |" in md and "nproc" not in md and "machine:" in md


def test_the_query_rows_name_the_forest_with_what_it_was_built_with():
    assert bench._forest_name({"forest": "hnsw", "graph_m": 32, "graph_ef_construction": 200}) == "hnsw M 32 efc 200"
    assert bench._forest_name({"forest": "hnsw"}) == "hnsw"  # a graph written before its settings were recorded
    assert bench._forest_name({"forest": "annoy", "trees": 64}) == "Annoy 64 trees"


def test_cli_has_bench_verb():
    from core.cli import build_parser

    a = build_parser("bench").parse_args(["bench", "--quick", "--out", "x.md", "--sections", "regions"])
    assert a.quick and a.out == "x.md" and a.sections == "regions" and not a.reuse_index
    a = build_parser("bench").parse_args(["bench", "--sections", "query", "--workdir", "w", "--reuse-index"])
    assert a.reuse_index and a.workdir == "w"


def test_the_cli_offers_every_section_the_runner_has():
    from benchmarks import cli

    assert set(cli.SECTIONS) == set(bench.SECTIONS)


def test_the_restart_section_times_fresh_processes_on_a_warm_cache(tmp_path):
    """``python -m core bench --sections restart``, as a user runs it: a table of every step, and the heavy
    modules the first search imported (no torch: the default embedder runs its cached ONNX model)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "bench.md"
    env = {k: v for k, v in os.environ.items() if k != "VPS_BACKEND"}
    p = subprocess.run([sys.executable, "-m", "core", "bench", "--quick", "--sections", "restart", "--out", str(out),
                        "--workdir", str(tmp_path / "work")], cwd=SAMPLE.parent, env=env, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    text = out.read_text()
    assert "First result after a server restart (fresh process, warm cache; 3 runs)" in text
    for step in ("start Python", "import the engine", "load the embedder", "load the index", "first search",
                 "process start to first result"):
        assert f"| {step} | " in text
    heavy = text.split("Heavy modules the first search imported: ", 1)[1].split(" (of ", 1)[0]
    assert "torch" not in heavy.split(", "), heavy


def test_query_rows_are_timed_warm_apart_from_cold_and_reuse_a_built_index(sample_vectors, tmp_path, monkeypatch):
    """The query section times each size twice in its process: right after opening (cold) and after the read pass
    that warms vectors.npy (p50 / p99); with reuse it searches the index an earlier run left in its workdir."""
    from core.embedding import DEFAULT_SPEC

    monkeypatch.setattr(bench, "in_fresh_process", lambda fn, *a: fn(*a))  # same process: fast
    items = [{"product_id": f"R{i:05d}", "image": f"{i}.jpg"} for i in range(len(sample_vectors))]
    queries = sorted((SAMPLE / "queries").glob("*.jpg"))[:4]
    args = (True, sample_vectors, items, queries, SAMPLE / "images", tmp_path, DEFAULT_SPEC, (200,))
    t = bench.bench_query(*args)
    row = dict(zip(t.columns, t.rows[0]))
    cold_p50, cold_p99 = (float(x) for x in row["cold p50 / p99 ms"].split(" / "))
    assert 0 < cold_p50 <= cold_p99 and 0 < float(row["p50 ms"]) <= float(row["p99 ms"])
    assert 0 <= int(row["queries during read pass"]) <= 20 and float(row["product recall@10 vs exact"]) > 0.5
    assert any("warm" in n and "Cold" in n for n in t.notes)
    built = (tmp_path / "index-200" / "BUILD_SECONDS").read_text()

    def no_build(*a):
        raise AssertionError("the index was built again")

    monkeypatch.setattr(bench, "build_synthetic_index", no_build)
    again = bench.bench_query(*args, reuse=True)
    assert float(dict(zip(again.columns, again.rows[0]))["index build s"]) == float(built)  # the recorded time
    assert any("--reuse-index" in n for n in again.notes)
    with pytest.raises(AssertionError, match="built again"):
        bench.bench_query(*args)  # without reuse the index is built afresh
