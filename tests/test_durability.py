"""Crash safety and concurrency: a killed writer never leaves a broken index; readers never see one."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from annoy import AnnoyIndex
from filelock import FileLock

from core.config.store import StoreError, atomic_path, atomic_write, writer_lock
from core.data.catalog import load_catalog
from core.index.product_index import ProductIndex
from tests.conftest import ROOT, SAMPLE
from tests.helpers import PixelEmbedder, subset

WRITER = r"""
import sys, random
from core.data.catalog import load_catalog
from core.index.product_index import ProductIndex
from tests.helpers import PixelEmbedder, subset
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
emb = PixelEmbedder()
cat = load_catalog(sys.argv[3])
pids = sorted(cat.products)
if sys.argv[4] == "build":
    while True:
        ProductIndex.build(subset(cat, set(rng.sample(pids, 120))), emb, root)
idx = ProductIndex.load(root)
while True:
    op = rng.choice(["add", "remove", "compact"])
    if op == "add":
        idx, _ = idx.add(subset(cat, set(rng.sample(pids, 60)) | set(idx.live_products())), emb)
    elif op == "remove" and len(idx.live_products()) > 20:
        idx = idx.remove(rng.sample(idx.live_products(), 5))
    else:
        idx = idx.compact()
"""


def check_consistent(root) -> ProductIndex:
    """Everything the manifest promises is there and agrees."""
    idx = ProductIndex.load(root)
    m = idx.manifest
    assert idx.vectors.shape == (m["n_vectors"], m["dim"]) == (len(idx.items), idx.dim)
    assert m["n_base"] + m["n_delta"] == m["n_vectors"] and len(idx.removed) == m["n_removed"]
    if m["n_base"]:
        ann = AnnoyIndex(idx.dim, "angular")
        ann.load(str(idx.gen / "annoy.ann"))
        assert ann.get_n_items() == m["n_base"]
    live = idx.live_products()
    assert len(live) == m["n_products"] and all(p in idx.products for p in live)
    hits = idx.search(np.asarray(idx.vectors[0]), 5)[0]
    assert hits and hits[0].product_id in live or idx.item_pid[0] not in live
    return idx


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["build", "update"])
def test_killed_writer_leaves_a_complete_index(tmp_path, mode):
    root = tmp_path / "idx"
    cat = load_catalog(SAMPLE)
    ProductIndex.build(subset(cat, set(sorted(cat.products)[:100])), PixelEmbedder(), root)
    rng = random.Random(0)
    for round_ in range(6):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(round_), str(SAMPLE), mode], cwd=ROOT,
                             stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.5, 4.0))
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        p.send_signal(signal.SIGKILL)
        p.wait()
        check_consistent(root)
    assert len(list(root.glob("gen-*"))) <= 3  # crashed leftovers are collected by the next write
    ProductIndex.load(root).compact()
    assert not list(root.glob(".tmp-*"))


def test_two_writers_are_serialised_or_fail_clearly(tmp_path):
    root = tmp_path / "idx"
    root.mkdir()
    held = FileLock(str(root / ".lock"))
    held.acquire()
    try:
        with pytest.raises(StoreError, match="being updated by another process"):
            with writer_lock(root, timeout=0.2):
                pass
    finally:
        held.release()
    with writer_lock(root, timeout=0.2):
        pass


def test_searches_stay_correct_while_adding_and_compacting(tmp_path):
    cat = load_catalog(SAMPLE)
    pids = sorted(cat.products)
    emb = PixelEmbedder()
    base = set(pids[:150])
    idx, _ = ProductIndex.build(subset(cat, base), emb, tmp_path / "idx")
    probe = [i for i, it in enumerate(idx.items) if it["product_id"] in base][:8]
    probes = [(np.asarray(idx.vectors[i]).copy(), idx.items[i]["product_id"]) for i in probe]
    errors: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                cur = ProductIndex.load(tmp_path / "idx")
                for v, pid in probes:  # base products are never removed: each is its own best match
                    top = cur.search(v, 1)[0][0]
                    if top.product_id != pid or top.score < 0.9999:
                        errors.append(f"{pid} -> {top.product_id} {top.score}")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i, extra in enumerate([pids[150:170], pids[170:200], pids[200:240]]):
            idx, _ = idx.add(subset(cat, base | set(extra)), emb)
            idx = idx.remove(extra[:3])
            if i % 2 == 0:
                idx = idx.compact()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    check_consistent(tmp_path / "idx")


def _small_catalog(root) -> None:
    """Three products of the sample catalog (six images)."""
    (root / "images").mkdir(parents=True)
    lines = (SAMPLE / "catalog.csv").read_text().splitlines()
    keep = [ln for ln in lines[1:] if ln.split(",")[1] in ("P0000", "P0001", "P0002")]
    (root / "catalog.csv").write_text("\n".join([lines[0], *keep]) + "\n")
    for ln in keep:
        shutil.copy(SAMPLE / ln.split(",")[0], root / ln.split(",")[0])


def _disk_full(monkeypatch, where: str) -> None:
    """Simulate a full disk: the chosen write of a new generation fails with ENOSPC after writing a little."""
    import core.index.product_index as pi

    def fail(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    if where == "json":
        monkeypatch.setattr(pi, "write_json", fail)
    else:
        monkeypatch.setattr(pi, "_save_vectors", fail)


@pytest.mark.parametrize("where", ["vectors", "json"])
@pytest.mark.parametrize("verb", ["index", "remove", "compact"])
def test_full_disk_is_one_line_and_the_old_index_stays(tmp_path, monkeypatch, capsys, verb, where):
    from core.cli import main

    cat, root = tmp_path / "cat", tmp_path / "idx"
    _small_catalog(cat)
    assert main(["index", "--catalog", str(cat), "--out", str(root), "--model", "efficientnet-lite0"]) == 0
    assert main(["remove", "--index", str(root), "P0002"]) == 0
    before = ProductIndex.load(root)
    capsys.readouterr()
    _disk_full(monkeypatch, where)
    argv = {"index": ["index", "--catalog", str(cat), "--out", str(root), "--model", "efficientnet-lite0"],
            "remove": ["remove", "--index", str(root), "P0001"],
            "compact": ["compact", "--index", str(root)]}[verb]
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("embedding")]  # progress
    assert len(err) == 1 and err[0].startswith(f"error: no space left on device while writing {root}"), err
    monkeypatch.undo()
    after = check_consistent(root)
    assert after.fingerprint == before.fingerprint and after.items == before.items
    assert after.live_products() == ["P0000", "P0001"]
    assert not list(root.glob(".tmp-*")) and len(list(root.glob("gen-*"))) == 2


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "sub" / "data.npz"
    atomic_write(p, b"old")
    assert p.read_bytes() == b"old"
    with atomic_path(p) as tmp:
        assert tmp.parent == p.parent and tmp.suffix == ".npz" and tmp != p
        np.savez(tmp, x=np.arange(3))  # numpy keeps a name that ends in .npz as it is
    assert np.load(p)["x"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert np.load(p)["x"].tolist() == [0, 1, 2]
    atomic_write(tmp_path / "t.csv", "é,1\n", encoding="cp1252")
    assert (tmp_path / "t.csv").read_bytes() == "é,1\n".encode("cp1252")
    with atomic_path(tmp_path / "folder") as d:  # a folder is published the same way
        d.mkdir()
        (d / "a.txt").write_text("a")
    assert (tmp_path / "folder" / "a.txt").read_text() == "a"
    assert sorted(f.name for f in p.parent.iterdir()) == ["data.npz"]
    assert not list(tmp_path.glob(".*"))
