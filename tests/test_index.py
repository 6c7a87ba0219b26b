"""The index: save/load/mmap, embedder mismatch, filters, and add/remove/compact == a fresh build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.data.catalog import load_catalog
from core.embedding.batch import embed_sources
from core.index.product_index import IndexStateError, ProductIndex
from tests.conftest import SAMPLE
from tests.helpers import PixelEmbedder, subset


@pytest.fixture(scope="module")
def pix():
    return PixelEmbedder()


@pytest.fixture(scope="module")
def queries(pix):
    import csv

    rows = list(csv.DictReader(open(SAMPLE / "queries.csv")))
    vecs, _ = embed_sources(pix, [SAMPLE / r["image"] for r in rows])
    return vecs


def _results(idx, q, **kw):
    return [[(h.product_id, round(h.score, 5)) for h in hits] for hits in idx.search(q, 10, **kw)]


def test_build_load_and_manifest(sample_index, embedder):
    idx = ProductIndex.load(sample_index.root, embedder)
    assert not isinstance(idx.vectors, np.memmap)  # read by row: a truncated file is an error, not a SIGBUS
    m = idx.manifest
    assert m["embedder"]["spec"] == "efficientnet-lite0" and m["dim"] == 1280 and m["metric"] == "angular"
    assert m["n_products"] == 240 and m["n_vectors"] == len(idx.items) and m["trees"] > 0
    assert len(m["catalog_fingerprint"]) == 16 and m["created"].endswith("Z")
    np.testing.assert_allclose(np.linalg.norm(idx.vectors, axis=1), 1.0, atol=1e-5)


def test_search_returns_products_with_fields(sample_index):
    i = next(i for i, it in enumerate(sample_index.items) if it["image"].endswith("_b.jpg"))
    hits = sample_index.search(np.asarray(sample_index.vectors[i]), k=5)[0]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0].product_id == sample_index.items[i]["product_id"] and hits[0].score == pytest.approx(1, abs=1e-5)
    assert len({h.product_id for h in hits}) == 5  # products, not images: two views count once
    assert hits[0].fields["title"] and float(hits[0].fields["price"]) > 0
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_loading_with_another_embedder_is_an_error(sample_index, tiny_clip):
    with pytest.raises(IndexStateError, match="built with embedder efficientnet-lite0"):
        ProductIndex.load(sample_index.root, tiny_clip)
    with pytest.raises(IndexStateError, match="query vectors are 32-d"):
        sample_index.search(np.ones(32, np.float32))


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexStateError, match="no index in"):
        ProductIndex.load(tmp_path)


def test_filters_that_leave_few_products(sample_index):
    q = np.asarray(sample_index.vectors[0])
    mugs = sample_index.search(q, 10, ["category=mug", "price<10"])[0]
    truth = [p for p, f in sample_index.products.items() if f["category"] == "mug" and float(f["price"]) < 10]
    assert 0 < len(truth) < 10
    assert sorted(h.product_id for h in mugs) == sorted(truth)  # all of them, though Annoy alone would miss
    one = sample_index.search(q, 10, ["category=lamp", "colour=teal", "pattern=stars"])[0]
    expect = [p for p, f in sample_index.products.items()
              if (f["category"], f["colour"], f["pattern"]) == ("lamp", "teal", "stars")]
    assert [h.product_id for h in one] == expect
    assert sample_index.search(q, 10, ["category=spaceship"])[0] == []


def test_filtered_annoy_search_equals_exact(sample_index):
    q = np.asarray(sample_index.vectors[:20])
    for where in (None, ["category=shoe,bag"], ["price=20..60"], ["colour!=red"]):
        assert _results(sample_index, q, where=where) == _results(sample_index, q, where=where, exact=True)


def test_min_score(sample_index):
    hits = sample_index.search(np.asarray(sample_index.vectors[0]), 50, min_score=0.8)[0]
    assert hits and all(h.score >= 0.8 for h in hits)


def test_add_remove_compact_equals_fresh_build(sample_catalog, pix, queries, tmp_path):
    pids = sorted(sample_catalog.products)
    first, later, gone = set(pids[:150]), set(pids[150:]), set(pids[10:20]) | set(pids[200:205])
    idx, _ = ProductIndex.build(subset(sample_catalog, first), pix, tmp_path / "inc")
    idx, rep = idx.add(subset(sample_catalog, first | later), pix)
    assert rep.added == len([r for r in sample_catalog.rows if r.product_id in later])  # only the new rows
    assert idx.manifest["n_delta"] == rep.added and idx.manifest["n_base"] < len(idx.items)
    idx = idx.remove(sorted(gone))
    final = set(pids) - gone
    fresh, _ = ProductIndex.build(subset(sample_catalog, final), pix, tmp_path / "fresh")
    assert set(idx.live_products()) == final
    for kw in ({"exact": True}, {}):
        assert _results(idx, queries, **kw) == _results(fresh, queries, **kw)
        assert _results(idx, queries, where=["category=hat"], **kw) == _results(fresh, queries, where=["category=hat"],
                                                                                 **kw)
    idx = idx.compact()
    assert idx.manifest["n_delta"] == 0 and idx.manifest["n_removed"] == 0
    assert len(idx.items) == len(fresh.items)
    assert _results(idx, queries) == _results(fresh, queries)
    # a removed product comes back when its rows are added again
    idx, rep = idx.add(subset(sample_catalog, set(pids)), pix)
    assert set(idx.live_products()) == set(pids)


def test_labels_vectors_and_live_counts_follow_removals(sample_catalog, pix, tmp_path):
    idx, _ = ProductIndex.build(sample_catalog, pix, tmp_path / "i")
    cats = {r.product_id: r.fields["category"] for r in sample_catalog.rows}
    assert idx.labels("category") == cats and idx.labels() == {p: p for p in cats}
    rows_of = {p: [i for i, r in enumerate(sample_catalog.rows) if r.product_id == p] for p in cats}
    assert idx.vector_ids == rows_of
    counts = idx.label_counts("category")
    assert sum(counts.values()) == len(cats) and counts["bag"] == sum(c == "bag" for c in cats.values())
    gone = [p for p, c in cats.items() if c == "bag"][:3]
    idx = idx.remove(gone)
    assert idx.label_counts("category")["bag"] == counts["bag"] - 3
    assert idx.labels("category")[gone[0]] == "bag"  # a removed product keeps its label, not its vectors
    assert gone[0] not in idx.vector_ids and gone[0] not in idx.label_counts()
    assert set(idx.label_counts().values()) == {1}
    with pytest.raises(IndexStateError, match="no column 'colour_name'"):
        idx.labels("colour_name")


def test_add_with_nothing_new_embeds_nothing(sample_catalog, pix, tmp_path):
    idx, _ = ProductIndex.build(sample_catalog, pix, tmp_path / "i")
    idx2, rep = idx.add(sample_catalog, pix)
    assert rep.added == 0 and len(idx2.items) == len(idx.items)


def test_remove_unknown_product_is_an_error(sample_catalog, pix, tmp_path):
    idx, _ = ProductIndex.build(subset(sample_catalog, {"P0001", "P0002"}), pix, tmp_path / "i")
    with pytest.raises(IndexStateError, match="unknown product"):
        idx.remove(["nope"])


def test_unreadable_catalog_images_are_skipped_at_build(tmp_path, pix):
    from PIL import Image

    Image.new("RGB", (20, 20), "red").save(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (tmp_path / "catalog.csv").write_text("image,product_id\nok.png,A\nbad.jpg,B\n")
    idx, rep = ProductIndex.build(load_catalog(tmp_path), pix, tmp_path / "idx")
    assert idx.live_products() == ["A"]
    assert len(rep.skipped) == 1 and "line 3 (bad.jpg)" in rep.skipped[0]


def test_generations_are_atomic_and_old_ones_collected(sample_catalog, pix, tmp_path):
    root = tmp_path / "i"
    idx, _ = ProductIndex.build(subset(sample_catalog, {"P0001", "P0002", "P0003"}), pix, root)
    for _ in range(3):
        idx = idx.remove(["P0001"]) if "P0001" in idx.live_products() else idx.compact()
    gens = sorted(p.name for p in root.glob("gen-*"))
    assert len(gens) <= 2 and (root / "CURRENT").read_text() in gens
    assert not list(root.glob(".tmp-*"))
    assert json.loads((root / (root / "CURRENT").read_text() / "manifest.json").read_text())["format"] == 1


def _low_rank_unit_vectors(n: int, dim: int = 512, rank: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim)) + 0.01 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_large_catalogs_get_a_pca_reduced_forest_rescored_on_full_vectors(tmp_path, monkeypatch):
    import core.index.product_index

    monkeypatch.setattr(core.index.product_index, "PCA_MIN_VECTORS", 2_000)
    vecs = _low_rank_unit_vectors(3_000)
    items = [{"product_id": f"p{i}", "image": f"{i}.jpg"} for i in range(len(vecs))]
    products = {it["product_id"]: {"category": "abc"[i % 3]} for i, it in enumerate(items)}
    info = {"spec": "synthetic", "dim": 512}
    idx = ProductIndex.from_arrays(tmp_path / "big", vecs, items, products, info)
    assert idx.manifest["annoy_dim"] == 256 and idx.pca is not None and idx.annoy.f == 256
    q = _low_rank_unit_vectors(40, seed=1)
    approx, exact = _results(idx, q), _results(idx, q, exact=True)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)])
    assert overlap >= 0.95  # candidates from the reduced forest, scores from the full vectors
    assert all(s == e for a, b in zip(approx, exact) for s, e in zip(a, b) if s[0] == e[0])
    # remove reuses the forest and its PCA; compact refits both and equals a fresh build of the same vectors
    gone = [f"p{i}" for i in range(0, 3_000, 7)]
    idx = idx.remove(gone)
    assert idx.pca is not None and not {h[0] for r in _results(idx, q) for h in r} & set(gone)
    idx = idx.compact()
    keep = [i for i in range(len(vecs)) if i % 7]
    fresh = ProductIndex.from_arrays(tmp_path / "fresh", vecs[keep], [items[i] for i in keep], products, info)
    assert idx.manifest["annoy_dim"] == fresh.manifest["annoy_dim"] == 256
    assert _results(idx, q) == _results(fresh, q)
    # below the threshold: a full-dimension forest
    monkeypatch.setattr(core.index.product_index, "PCA_MIN_VECTORS", 10**9)
    small = ProductIndex.from_arrays(tmp_path / "small", vecs, items, products, info)
    assert small.pca is None and small.manifest["annoy_dim"] == 512


@pytest.mark.timeout(180)
def test_a_graph_over_pca_is_denser_and_recorded_in_the_manifest(tmp_path, monkeypatch):
    import subprocess
    import sys

    import core.index.product_index as pi
    from core.index.hnsw_index import HnswIndex
    from core.index.tuning import reduced_candidates
    from tests.conftest import ROOT

    monkeypatch.setattr(pi, "HNSW_MIN_VECTORS", 1_000)
    monkeypatch.setattr(pi, "PCA_MIN_VECTORS", 2_000)
    vecs = _low_rank_unit_vectors(3_000)
    items = [{"product_id": f"p{i}", "image": f"{i}.jpg"} for i in range(len(vecs))]
    products = {it["product_id"]: {} for it in items}
    info = {"spec": "synthetic", "dim": 512}
    idx = HnswIndex.from_arrays(tmp_path / "big", vecs, items, products, info)
    m, t = idx.manifest, idx.settings
    assert idx.forest == "hnsw" and idx.graph is not None and idx.annoy is None
    assert idx.pca is not None and m["annoy_dim"] == 128 and m["graph_m"] == 32 and m["graph_ef_construction"] == 200
    # the reduced graph's candidates are re-scored on the full vectors: never fewer than the floor, more for a
    # larger catalog
    assert t["candidates"] >= 320 and t["search_k"] >= 160 and t["queries"] == 200
    assert reduced_candidates(200_000) < 320 < reduced_candidates(1_000_000) <= 640
    assert "an hnsw graph (M 32, ef_construction 200) over PCA-128" in idx.summary
    assert f"ef {t['search_k']:,}, {t['candidates']:,} candidates" in idx.summary
    rng = np.random.default_rng(3)
    q = vecs[rng.choice(len(vecs), 40, replace=False)] + 0.05 * rng.normal(size=(40, 512)).astype(np.float32)
    approx, exact = _results(idx, q), _results(idx, q, exact=True)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)]) >= 0.95
    # writes that keep the graph keep what it was built with; `info` shows it
    kept = idx.remove(["p3"])
    assert kept.settings == t and kept.manifest["graph_m"] == 32 and kept.summary.startswith("2999 products")
    r = subprocess.run([sys.executable, "-m", "core", "info", "--index", f"hnsw:{idx.root}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0 and "M 32" in r.stdout and f"ef {t['search_k']:,}" in r.stdout, r.stderr
    # a plain folder: the graph with M 16 over the full vectors from HNSW_MIN_VECTORS, Annoy over PCA-256 from
    # PCA_MIN_VECTORS (with the same floor of candidates), Annoy below both
    plain = ProductIndex.from_arrays(tmp_path / "plain", vecs, items, products, info)
    assert plain.forest == "annoy" and plain.manifest["annoy_dim"] == 256 and plain.settings["candidates"] >= 320
    monkeypatch.setattr(pi, "PCA_MIN_VECTORS", 10**9)
    full = ProductIndex.from_arrays(tmp_path / "full", vecs, items, products, info)
    assert full.forest == "hnsw" and full.pca is None and full.manifest["graph_m"] == 16
    monkeypatch.setattr(pi, "HNSW_MIN_VECTORS", 10**9)
    assert ProductIndex.from_arrays(tmp_path / "small", vecs, items, products, info).forest == "annoy"


def test_the_vectors_are_read_once_in_the_background_when_memory_allows(tmp_path, monkeypatch):
    import os

    import core.index.files as files

    path = tmp_path / "v.bin"
    path.write_bytes(os.urandom(3 << 20))

    def open_on_path() -> int:
        """This process's descriptors open on ``path`` (other threads of the run open and close files of their
        own meanwhile: a count of every descriptor would follow them)."""
        real, n = str(path.resolve()), 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                n += os.readlink(f"/proc/self/fd/{fd}") == real
            except OSError:  # closed meanwhile
                pass
        return n

    with open(path, "rb") as f:
        assert open_on_path() == 1
        t = files.prefetch(f.fileno(), 3 << 20, chunk=1 << 20)
        assert t is not None
        t.join(timeout=60)
        assert not t.is_alive() and open_on_path() == 1  # its own descriptor, closed
        t = files.prefetch(f.fileno(), 6 << 20)  # a file shorter than it was: the pass stops
        t.join(timeout=60)
        assert not t.is_alive() and open_on_path() == 1
        assert files.mem_available() > 0
        monkeypatch.setattr(files, "mem_available", lambda: 4 << 20)  # larger than half of what is available
        assert files.prefetch(f.fileno(), 3 << 20) is None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a thread's nice value from /proc")
def test_the_read_pass_runs_at_the_lowest_priority_and_can_be_waited_for(sample_index, monkeypatch):
    import os
    import threading

    import core.index.files as files

    entered, release, real = threading.Event(), threading.Event(), os.preadv

    def held(fd, buffers, offset):  # the read pass waits here until the test has looked at it
        if threading.current_thread().name == "vectors-prefetch":
            entered.set()
            release.wait(120)
        return real(fd, buffers, offset)

    monkeypatch.setattr(files.os, "preadv", held)
    idx = ProductIndex.load(sample_index.root)
    try:
        assert entered.wait(120)
        tid = idx.vectors._warming.native_id
        nice = int(Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == 19 and not idx.wait_warm(0)  # searches come first; the pass has not ended
        assert idx.search(np.asarray(idx.vectors[0]), 3)[0]  # searching does not wait for it
    finally:
        release.set()
    assert idx.wait_warm(120) and idx.vectors.wait_warm(0)


def test_vectors_are_read_by_row_like_an_array(sample_index):
    v, whole = sample_index.vectors, np.asarray(sample_index.vectors)
    assert whole.shape == v.shape == (len(sample_index.items), sample_index.dim) and len(v) == len(whole)
    n = len(whole)
    for key in (0, -1, n - 1, slice(3, 9), slice(None, None, 7), slice(5, 2), [4, 1, 4, n - 1], np.array([], int),
                np.arange(0, n, 2), np.arange(n) % 3 == 0, (slice(0, 4), slice(0, 5)), (2, slice(0, 5)),
                np.array([[1, 2], [3, 4]])):
        np.testing.assert_array_equal(v[key], whole[key])
    with pytest.raises(IndexError):
        v[[n]]
    assert sample_index.intact()


def test_search_settings_are_chosen_at_build_and_recorded_with_their_recall(tmp_path):
    vecs = _low_rank_unit_vectors(4_000, rank=96)
    items = [{"product_id": f"p{i // 2}", "image": f"{i}.jpg"} for i in range(len(vecs))]  # two views each
    products = {it["product_id"]: {} for it in items}
    idx = ProductIndex.from_arrays(tmp_path / "t", vecs, items, products, {"spec": "synthetic", "dim": 512})
    t = idx.settings
    assert t["k"] == 10 and t["queries"] == 200 and 0 <= t["recall"] <= 1 and t["target"] == 0.98
    assert t["reached"] == (t["recall"] >= t["target"]) and t["search_k"] > 0 and t["candidates"] > 0
    assert f"recall@10 {t['recall']:.3f}" in idx.summary
    # what search gets with them on other queries near the catalog is close to what the build measured
    rng = np.random.default_rng(5)
    q = vecs[rng.choice(len(vecs), 60, replace=False)] + 0.02 * rng.normal(size=(60, 512)).astype(np.float32)
    approx, exact = _results(idx, q), _results(idx, q, exact=True)
    recall = np.mean([len({h[0] for h in a} & {h[0] for h in b}) / 10 for a, b in zip(approx, exact)])
    assert recall >= t["recall"] - 0.05
    # writes that keep the forest keep its settings; compact chooses them again
    assert idx.remove(["p3"]).settings == t
    assert idx.remove(["p3"]).compact().settings["queries"] == 200


@pytest.mark.timeout(120)
def test_info_verb_shows_the_search_settings(sample_index):
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-m", "core", "info", "--index", str(sample_index.root)], cwd=ROOT,
                       capture_output=True, text=True, timeout=100)
    t = sample_index.settings
    assert r.returncode == 0, r.stderr
    assert f"search_k {t['search_k']:,}" in r.stdout and f"recall@10 {t['recall']:.3f}" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "core", "info", "--index", str(sample_index.root / "nope")],
                         cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_row_scores_are_the_matrix_product_on_the_calling_thread():
    from core.index import row_scores

    rng = np.random.default_rng(0)
    rows, q = rng.normal(size=(640, 96)).astype(np.float32), rng.normal(size=96).astype(np.float32)
    got = row_scores(rows, q)
    assert got.dtype == np.float32 and got.shape == (640,)
    np.testing.assert_allclose(got, rows.astype(np.float64) @ q, rtol=1e-5, atol=1e-4)
    assert row_scores(np.zeros((0, 96), np.float32), q).shape == (0,)
