"""Cached artefacts record what produced them; a stale one is detected and rebuilt, never used."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from core.data.catalog import load_catalog
from core.index.product_index import IndexStateError, ProductIndex
from core.index.workspace import ensure_index, index_dir_for, index_state
from tests.helpers import PixelEmbedder


@pytest.fixture
def small_catalog(tmp_path):
    root = tmp_path / "cat"
    root.mkdir()
    for c in ["red", "green", "blue"]:
        Image.new("RGB", (40, 40), c).save(root / f"{c}.png")
    (root / "catalog.csv").write_text("image,product_id,category\nred.png,R,a\ngreen.png,G,b\nblue.png,B,a\n")
    return root


def test_index_is_built_once_then_reused_then_rebuilt_when_catalog_changes(small_catalog):
    emb = PixelEmbedder()
    assert index_state(load_catalog(small_catalog), emb.spec)[0] == "missing"
    idx = ensure_index(small_catalog, emb)
    assert index_state(load_catalog(small_catalog), emb.spec) == ("ok", "")
    assert ensure_index(small_catalog, emb).fingerprint == idx.fingerprint  # reused, not rebuilt
    Image.new("RGB", (40, 40), "yellow").save(small_catalog / "red.png")  # same name, new picture
    state, reason = index_state(load_catalog(small_catalog), emb.spec)
    assert state == "stale" and "catalog changed" in reason
    assert ensure_index(small_catalog, emb).fingerprint != idx.fingerprint


def test_index_from_another_embedder_or_code_version_is_refused(small_catalog):
    emb = PixelEmbedder()
    idx = ensure_index(small_catalog, emb)
    with pytest.raises(IndexStateError, match="built with embedder test-pixels"):
        ProductIndex.load(idx.root, PixelEmbedder("other-model"))
    assert index_dir_for(small_catalog, "other-model") != idx.root  # each embedder has its own cache
    m = json.loads((idx.gen / "manifest.json").read_text())
    m["format"] = 999
    (idx.gen / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexStateError, match="another version"):
        ProductIndex.load(idx.root)
    assert index_state(load_catalog(small_catalog), emb.spec)[0] == "stale"
    assert ensure_index(small_catalog, emb).manifest["format"] == 1


def test_catalog_folder_moved(small_catalog, tmp_path):
    emb = PixelEmbedder()
    ensure_index(small_catalog, emb)
    moved = tmp_path / "moved"
    shutil.move(small_catalog, moved)
    assert index_state(load_catalog(moved), emb.spec)[0] == "missing"


def test_many_callers_asking_for_the_same_index_share_one_build(small_catalog, monkeypatch):
    """Six sessions opening the same unindexed catalog at once: one build (single flight); the others wait for
    it, their progress following it, and get its index."""
    import threading
    import time

    emb = PixelEmbedder()
    real, builds, started = ProductIndex.build, [], threading.Event()

    def slow_build(*a, progress=False, **kw):
        """A build that moves until every session has followed it (a waiting session reads the build's progress
        every 0.25 s): no session can miss it, however late a busy machine starts its thread."""
        builds.append(1)
        started.set()
        deadline, i = time.monotonic() + 120, 0
        while not all(seen.values()) and time.monotonic() < deadline:
            i = min(i + 1, 99)
            progress(i, 100)
            time.sleep(0.05)
        progress(100, 100)
        return real(*a, **kw)

    monkeypatch.setattr(ProductIndex, "build", slow_build)
    seen: dict[int, list] = {n: [] for n in range(6)}
    out: dict[int, object] = {}

    def session(n):
        out[n] = ensure_index(small_catalog, emb, progress=lambda i, total, n=n: seen[n].append((i, total)))

    threads = [threading.Thread(target=session, args=(0,))]
    threads[0].start()
    assert started.wait(120)
    threads += [threading.Thread(target=session, args=(n,)) for n in range(1, 6)]
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(180)
    assert len(builds) == 1 and len({o.fingerprint for o in out.values()}) == 1 and len(out) == 6
    assert all(seen[n] for n in range(6))  # every waiting session's bar moved
    assert ensure_index(small_catalog, emb).fingerprint == out[0].fingerprint and len(builds) == 1


def test_a_failed_shared_build_is_one_error_for_every_caller(small_catalog, monkeypatch):
    import threading

    emb = PixelEmbedder()
    go = threading.Event()

    def failing(*a, **kw):
        go.wait(5)
        raise IndexStateError("no catalog image could be embedded (3 skipped)")

    monkeypatch.setattr(ProductIndex, "build", failing)
    errors = []

    def session():
        try:
            ensure_index(small_catalog, emb)
        except IndexStateError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=session) for _ in range(3)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(30)
    assert errors == ["no catalog image could be embedded (3 skipped)"] * 3


class _PageStopped(BaseException):
    """Like Streamlit's StopException / RerunException: a run stopped by a rerun or a page switch."""


def test_an_interrupted_build_releases_its_flight_and_a_waiting_caller_takes_it_over(small_catalog, monkeypatch):
    """Streamlit's fast reruns (a page switch mid-build) stop the old run (StopException from its progress bar)
    while the new run of the same session already waits on that build: the new run must not inherit the stop (it
    would end silently, leaving "Building the search index…" frozen) but build the index itself; a later
    request finds it."""
    import threading

    emb = PixelEmbedder()
    real, builds, started, waiting = ProductIndex.build, [], threading.Event(), threading.Event()

    def build(*a, progress=False, **kw):
        builds.append(threading.current_thread().name)
        progress(1, 3)
        return real(*a, progress=progress, **kw)

    monkeypatch.setattr(ProductIndex, "build", build)
    out: dict[str, object] = {}

    def stopped_page(i, n):
        started.set()
        waiting.wait(120)  # the other session is waiting on this build when this page is stopped
        raise _PageStopped

    def leader():
        try:
            ensure_index(small_catalog, emb, progress=stopped_page)
        except _PageStopped as e:
            out["leader"] = e

    def follower():
        try:
            out["follower"] = ensure_index(small_catalog, emb, progress=lambda i, n: waiting.set())
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion
            out["follower"] = e

    threads = [threading.Thread(target=leader, name="leader"), threading.Thread(target=follower, name="follower")]
    threads[0].start()
    assert started.wait(120)  # the leader is building before the follower asks
    threads[1].start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a caller waits forever"
    assert isinstance(out["leader"], _PageStopped)
    assert isinstance(out["follower"], ProductIndex), out["follower"]  # built, not the leader's interruption
    assert builds == ["leader", "follower"]
    assert ensure_index(small_catalog, emb).fingerprint == out["follower"].fingerprint and len(builds) == 2


def test_a_build_interrupted_with_nobody_waiting_leaves_nothing_in_flight(small_catalog, monkeypatch):
    emb = PixelEmbedder()

    def stopped(i, n):
        raise _PageStopped

    with pytest.raises(_PageStopped):
        ensure_index(small_catalog, emb, progress=stopped)
    assert ensure_index(small_catalog, emb, progress=lambda i, n: None).fingerprint  # built, no wait
