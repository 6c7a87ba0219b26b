"""Tampered index files: each is refused with one IndexStateError line through the engine, and with exit 2 and one
line (no traceback) through ``search``, ``evaluate`` and ``compact`` (every case through the CLI's code path, a
representative few as real ``python -m core`` processes); nothing outside the index is read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.index.product_index import IndexStateError, ProductIndex
from tests.conftest import ROOT

N, DIM = 60, 1280


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, embedder) -> Path:
    """A small index with a PCA-reduced forest (every kind of index file), and a query image and CSV."""
    import core.index.product_index as pi

    base = tmp_path_factory.mktemp("tampered")
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    items = [{"product_id": f"p{i // 2}", "image": f"images/{i}.jpg"} for i in range(N)]
    products = {f"p{i}": {"title": f"Product {i}", "category": "abc"[i % 3]} for i in range(N // 2)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pi, "PCA_MIN_VECTORS", 10)
        idx = ProductIndex.from_arrays(base / "index", vecs, items, products, embedder.info(), catalog_root=base)
    assert idx.pca is not None and (idx.gen / "pca.npz").is_file() and idx.annoy is not None
    Image.new("RGB", (64, 64), "red").save(base / "q.jpg")
    (base / "queries.csv").write_text("image,product_id\nq.jpg,p1\n")
    return base / "index"


def _gen(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().strip()


def _json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))


def _manifest(gen: Path, **change) -> None:
    m = json.loads((gen / "manifest.json").read_text())
    for k, v in change.items():
        m.pop(k) if v is None else m.__setitem__(k, v)
    _json(gen / "manifest.json", m)


def _replace_with_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


def _escape(gen: Path) -> None:
    """CURRENT climbs out of the index into another folder holding a complete index."""
    elsewhere = gen.parent.parent / "elsewhere"
    shutil.copytree(gen, elsewhere / "gen-Y")
    (gen.parent / "CURRENT").write_text(f"{gen.name}/../../elsewhere/gen-Y")


def _linked_generation(gen: Path) -> None:
    """CURRENT names a gen-* entry that is a symlink to a generation outside the index."""
    shutil.copytree(gen, gen.parent.parent / "outside-gen")
    os.symlink(gen.parent.parent / "outside-gen", gen.parent / "gen-linked")
    (gen.parent / "CURRENT").write_text("gen-linked")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _pca_wrong_shape(gen: Path) -> None:
    with np.load(gen / "pca.npz") as z:
        mean = z["mean"]
    (gen / "pca.npz").unlink()
    np.savez(gen / "pca.npz", mean=mean, components=np.zeros((3, 7), np.float32))


#: name -> (tamper(generation folder), the file the one-line message must name)
CASES = {
    "annoy missing": (lambda g: (g / "annoy.ann").unlink(), "annoy.ann"),
    "annoy garbage": (lambda g: (g / "annoy.ann").write_bytes(os.urandom(50_000)), "annoy.ann"),
    "annoy truncated": (lambda g: os.truncate(g / "annoy.ann", 1000), "annoy.ann"),
    "annoy garbage, manifest without its size": (
        lambda g: (_manifest(g, annoy_bytes=None), (g / "annoy.ann").write_bytes(os.urandom(248 * 100))), "annoy.ann"),
    "vectors empty": (lambda g: (g / "vectors.npy").write_bytes(b""), "vectors.npy"),
    "fewer vectors than items": (lambda g: np.save(g / "vectors.npy", np.load(g / "vectors.npy")[:-5]),
                                 "vectors.npy"),
    "vectors pickled objects": (lambda g: np.save(g / "vectors.npy", np.array([{"x": 1}] * N), allow_pickle=True),
                                "vectors.npy"),
    "vectors symlink out": (lambda g: _replace_with_link(g / "vectors.npy", g.parent.parent / "q.jpg"),
                            "vectors.npy"),
    "items of ints": (lambda g: _json(g / "items.json", list(range(N))), "items.json"),
    "items 10^6 entries": (lambda g: _json(g / "items.json", [{"product_id": "p", "image": "x"}] * 10**6),
                           "items.json"),
    "items symlink to /dev/zero": (lambda g: _replace_with_link(g / "items.json", Path("/dev/zero")), "items.json"),
    "items FIFO": (lambda g: _fifo(g / "items.json"), "items.json"),
    "removed out of range": (lambda g: _json(g / "removed.json", [N + 5]), "removed.json"),
    "products as a list": (lambda g: _json(g / "products.json", [["p0", {}]]), "products.json"),
    "product fields as a list": (lambda g: _json(g / "products.json", {"p0": {"title": ["x"]}}), "products.json"),
    "pca missing": (lambda g: (g / "pca.npz").unlink(), "pca.npz"),
    "pca garbage": (lambda g: (g / "pca.npz").write_bytes(b"PK\x03\x04 not a zip"), "pca.npz"),
    "pca wrong shape": (_pca_wrong_shape, "pca.npz"),
    "manifest missing embedder": (lambda g: _manifest(g, embedder=None), "manifest.json"),
    "manifest n_base > n_vectors": (lambda g: _manifest(g, n_base=N + 10), "manifest.json"),
    "manifest dim as text": (lambda g: _manifest(g, dim="1280"), "manifest.json"),
    "manifest search settings as text": (lambda g: _manifest(g, search="fast"), "manifest.json"),
    "manifest search_k negative": (lambda g: _manifest(g, search={"k": 10, "search_k": -5, "candidates": 40,
                                                                  "recall": 1.0, "target": 0.98, "queries": 3}),
                                   "manifest.json"),
    "manifest not JSON": (lambda g: (g / "manifest.json").write_text("{not json"), "manifest.json"),
    "CURRENT escapes the index": (_escape, "CURRENT"),
    "CURRENT names a symlinked generation": (_linked_generation, "CURRENT"),
}


def _tampered(pristine: Path, tmp_path: Path, case: str) -> Path:
    root = tmp_path / "index"
    shutil.copytree(pristine, root, symlinks=True)
    CASES[case][0](_gen(root))
    return root


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_refuses_tampered_index_with_one_line(pristine, tmp_path, case):
    root = _tampered(pristine, tmp_path, case)
    with pytest.raises(IndexStateError) as e:
        ProductIndex.load(root)
    msg = str(e.value)
    assert "\n" not in msg and CASES[case][1] in msg, msg


def test_pristine_index_loads_and_searches(pristine):
    idx = ProductIndex.load(pristine)
    hits = idx.search(np.asarray(idx.vectors[4]), 3)[0]
    assert hits[0].product_id == "p2" and len(hits) == 3


def _verbs(root: str, base: Path) -> dict[str, list[str]]:
    return {"search": ["search", "--index", root, "--rank", "distance", str(base / "q.jpg")],
            "evaluate": ["evaluate", "--index", root, "--rank", "distance", "--queries", str(base / "queries.csv")],
            "compact": ["compact", "--index", root]}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_code_path_refuses_tampered_index_with_one_line(pristine, tmp_path, case, capsys):
    """Every case through each verb's code path (``main`` in-process: an uncaught exception fails the test)."""
    from core.cli import main

    root = str(_tampered(pristine, tmp_path, case))
    for verb, argv in _verbs(root, pristine.parent).items():
        assert main(argv) == 2, verb
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and CASES[case][1] in err, (verb, err)


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


#: a FIFO (a read would hang), a path out of the index, a missing key, a shape mismatch: as real processes too
AS_PROCESSES = ["items FIFO", "CURRENT escapes the index", "manifest missing embedder", "fewer vectors than items"]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", AS_PROCESSES)
def test_cli_refuses_tampered_index_with_one_line(pristine, tmp_path, case):
    """``python -m core search / evaluate / compact``: exit 2, one line on stderr, no traceback."""
    root = str(_tampered(pristine, tmp_path, case))
    runs = {verb: _cli(*argv) for verb, argv in _verbs(root, pristine.parent).items()}
    for verb, p in runs.items():
        _, err = p.communicate(timeout=240)
        assert p.returncode == 2, (verb, err[-2000:])
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (verb, err[-2000:])
        assert err.startswith("error: ") and CASES[case][1] in err, (verb, err)


@pytest.mark.timeout(300)
def test_cli_compacts_the_pristine_index(pristine, tmp_path):
    root = tmp_path / "index"
    shutil.copytree(pristine, root)
    p = _cli("compact", "--index", str(root))
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0 and f"{N} vectors" in out, err


def _head(tmp_path: Path, config) -> Path:
    d = tmp_path / "head"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    (d / "model.safetensors").write_bytes(b"not weights")
    return d


@pytest.mark.parametrize("config", [
    {"base": "efficientnet-lite0", "head": "1280"},
    {"base": "efficientnet-lite0", "head": {"in_dim": "1280", "out_dim": 256, "hidden": 1024}},
    {"base": "efficientnet-lite0", "head": {"in_dim": 1280, "out_dim": [256], "hidden": 1024}},
    {"base": "efficientnet-lite0", "head": {"in_dim": 1280, "out_dim": 256, "hidden": 10**9}},
    {"base": 7, "head": {"in_dim": 1280, "out_dim": 256, "hidden": 1024}},
    ["not", "an", "object"],
    {"base": "efficientnet-lite0", "head": {"in_dim": 1280, "out_dim": 256, "hidden": 1024}},  # bad weights
])
def test_head_config_with_wrong_types_is_one_line(tmp_path, embedder, config):
    from core.embedding.head import HeadEmbedder

    with pytest.raises(ValueError) as e:
        HeadEmbedder(embedder, _head(tmp_path, config))
    assert "\n" not in str(e.value) and "config.json" in str(e.value)


@pytest.mark.timeout(300)
def test_cli_with_a_bad_head_config_is_one_line(pristine, tmp_path):
    d = _head(tmp_path, {"base": "efficientnet-lite0", "head": {"in_dim": 1280.5, "out_dim": 256, "hidden": 8}})
    p = _cli("search", "--index", str(pristine), "--model", f"efficientnet-lite0+head:{d}",
             str(pristine.parent / "q.jpg"))
    _, err = p.communicate(timeout=240)
    assert p.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "in_dim" in err


HNSW_CASES = {
    "graph missing": lambda g: (g / "hnsw.bin").unlink(),
    "graph garbage of the same size": lambda g: (g / "hnsw.bin").write_bytes(
        os.urandom((g / "hnsw.bin").stat().st_size)),
    "graph truncated": lambda g: os.truncate(g / "hnsw.bin", 100),
    "graph header rewritten": lambda g: _json(g / "manifest.json", {
        **json.loads((g / "manifest.json").read_text()), "hnsw_digest": "0" * 32}),
    "graph symlink to /dev/zero": lambda g: _replace_with_link(g / "hnsw.bin", Path("/dev/zero")),
    "manifest forest unknown": lambda g: _manifest(g, forest="faiss"),
    "manifest graph degree as text": lambda g: _manifest(g, graph_m="32"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(HNSW_CASES))
def test_tampered_hnsw_graph_is_one_line(tmp_path, embedder, case):
    """hnswlib trusts the header of the file it loads: a graph whose bytes differ from what the manifest records
    is refused before hnswlib reads it."""
    from core.index.hnsw_index import HnswIndex

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    items = [{"product_id": f"p{i}", "image": f"images/{i}.jpg"} for i in range(N)]
    idx = HnswIndex.from_arrays(tmp_path / "g", vecs, items, {f"p{i}": {} for i in range(N)}, embedder.info())
    assert idx.graph is not None and idx.search(vecs[3], 3)[0][0].product_id == "p3"
    HNSW_CASES[case](_gen(tmp_path / "g"))
    with pytest.raises(IndexStateError) as e:
        HnswIndex.load(tmp_path / "g")
    assert "\n" not in str(e.value) and ("hnsw.bin" in str(e.value) or "manifest.json" in str(e.value))
