"""The app on a Milvus index opened as it is (``VPS_INDEX``), driven headlessly with ``AppTest``: picked in the
sidebar, it finds the same products as the Annoy index of the same catalog, every page works on it, and a link
naming it reopens it. Each test runs on Milvus Lite and on the server ``VPS_MILVUS_URI`` names (``.ci/with-milvus``
starts one; without it those skip, saying why)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.data.catalog import load_catalog
from core.data.text import WJ
from core.index.factory import build_index, open_index
from core.index.workspace import ensure_index
from core.search.engine import Searcher
from tests.helpers import milvus_location
from tests.test_app import SAMPLE, errors, run
from tests.test_app_state import (
    APP,
    MINI,
    PAGES,
    ROOT,
    SEARCH,
    TIMEOUT,
    catalog_shown,
    expected_hits,
    mini_catalog,
    page,
    pick_cropped_query,
    query_shown,
    results,
)
from ui.messages import md
from ui.sidebar import offered_indexes

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
MILVUS = ["milvus-lite", "milvus-server"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh app cache with the imported dataset ``mini`` (the sample catalog's index is never needed)."""
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    return mini_catalog(tmp_path / "cache" / "imports" / MINI / "catalog")


@pytest.fixture
def mini_searcher(cache, embedder):
    """The engine's search on the Annoy index of ``mini`` (the one the app builds in its cache)."""
    return Searcher(ensure_index(cache, embedder), embedder)


@pytest.fixture(params=MILVUS)
def milvus_mini(request, cache, embedder, tmp_path, monkeypatch):
    """A Milvus index (Lite, the server) of the imported dataset ``mini``, offered to the app by ``VPS_INDEX``."""
    uri = milvus_location(request.param, tmp_path, "mini")
    build_index(load_catalog(cache), embedder, uri)
    monkeypatch.setenv("VPS_INDEX", uri)
    return uri


@pytest.mark.slow
def test_the_app_searches_a_milvus_index_on_every_page(cache, mini_searcher, milvus_mini):
    key, label = f"index:{milvus_mini}", f"Index: {milvus_mini}"
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    at.query_params["catalog"] = MINI  # the Annoy index the app builds of the same catalog
    run(at)
    name, crop = pick_cropped_query(at, cache)
    annoy = results(at)
    assert [pid for pid, _ in annoy] == expected_hits(mini_searcher, cache / "queries" / name, crop)

    at.sidebar.selectbox(key="vps_catalog").set_value(label)
    run(at)
    assert catalog_shown(at) == label and not errors(at)
    assert query_shown(at) == (name, (10, 90), (0, 100))
    seen = results(at)
    assert [pid for pid, _ in seen] == [pid for pid, _ in annoy]
    assert [s for _, s in seen] == pytest.approx([s for _, s in annoy], abs=2e-3)
    url = {"catalog": key, "spec": "efficientnet-lite0", "q": name, "crop": "10,0,90,100"}
    assert at.query_params == url

    page(at, PAGES[0])  # Catalog: the index's own catalog and summary
    assert catalog_shown(at) == label and not errors(at)
    assert at.metric[0].value == str(len(mini_searcher.index))
    assert any("FLAT index" in c.proto.help for c in at.caption)  # the technical line, behind the help icon
    assert any(milvus_mini in c.proto.help.replace("\\", "").replace(WJ, "") for c in at.caption)

    page(at, PAGES[1])  # Embedding map, with the search page's query placed on it
    assert catalog_shown(at) == label and not errors(at)
    at.toggle(key="map_place").set_value(True)
    run(at)
    assert not errors(at) and any(s.value == "Nearest products in the full space" for s in at.subheader)

    page(at, PAGES[2])  # Classifier vs neighbours: the catalog's own labelled queries
    assert catalog_shown(at) == label and not errors(at)
    assert {"Classifier", "Closest catalog picture (pretrained)"} <= {m.label for m in at.metric}
    assert any(c.value.startswith("Share of the 12 photos it never saw") for c in at.caption)

    page(at, PAGES[3])  # Why these results: the same ranking
    assert catalog_shown(at) == label and not errors(at)
    assert [c.value.split(" ")[1] for c in at.caption if c.value.startswith("#")] == [pid for pid, _ in seen]

    page(at, PAGES[4])  # Evaluation: the catalog's queries, evaluated on the Milvus index
    assert catalog_shown(at) == label and not errors(at)
    assert at.selectbox(key="ev_queries").value == str(cache.resolve() / "queries.csv")
    at.button(key="ev_run").click()
    run(at)
    assert not errors(at) and at.dataframe

    page(at, SEARCH)  # back: the same index, photo, crop and results
    assert catalog_shown(at) == label and results(at) == seen and at.query_params == url

    again = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)  # a link naming the index reopens it
    again.query_params.update(url)
    run(again)
    assert catalog_shown(again) == label and not errors(again)
    assert query_shown(again) == (name, (10, 90), (0, 100)) and results(again) == seen


def test_served_offers_only_the_operators_indexes(monkeypatch):
    monkeypatch.setenv("VPS_INDEX", "milvus-lite:/srv/a.db, http://milvus:19530?collection=shoes,")
    ops = {"index:milvus-lite:/srv/a.db": "milvus-lite:/srv/a.db",
           "index:http://milvus:19530?collection=shoes": "http://milvus:19530?collection=shoes"}
    monkeypatch.setenv("VPS_MODE", "served")
    assert offered_indexes("index:milvus-lite:/home/x.db") == ops  # a link cannot name another one
    monkeypatch.setenv("VPS_MODE", "local")
    assert offered_indexes("index:milvus-lite:/home/x.db") == {**ops, "index:milvus-lite:/home/x.db":
                                                                "milvus-lite:/home/x.db"}
    assert offered_indexes("mini") == ops


@pytest.mark.slow
def test_the_catalog_page_edits_a_milvus_index(cache, milvus_mini):
    n = len(load_catalog(cache).products)
    at = AppTest.from_file(str(ROOT / PAGES[0]), default_timeout=TIMEOUT)
    at.query_params["catalog"] = f"index:{milvus_mini}"
    run(at)
    assert at.metric[0].value == str(n) and not errors(at)
    at.text_input(key="add_pid").set_value("NEW-1")
    at.file_uploader(key="add_images").set_value([("a.jpg", (SAMPLE / "images" / "P0200.jpg").read_bytes(),
                                                    "image/jpeg")])
    next(b for b in at.button if b.label == "Add to the catalog").click()
    run(at)
    assert not errors(at) and any("Added NEW-1 with 1 image(s)" in s.value for s in at.success)
    assert at.metric[0].value == str(n + 1) and "NEW-1" in (cache / "catalog.csv").read_text()
    assert "NEW-1" in open_index(milvus_mini).products  # in the Milvus collection itself, not only the app's copy

    at.multiselect(key="remove_pick").set_value(["NEW-1"])
    run(at)
    at.button(key="remove_go").click()
    run(at)
    assert any("Removed NEW-1" in s.value for s in at.success) and at.metric[0].value == str(n)
    assert "NEW-1" not in open_index(milvus_mini).products
    at.button(key="compact_go").click()
    run(at)
    assert any(f"Tidied up the search: {n} products" in s.value for s in at.success) and not errors(at)


@pytest.mark.parametrize("kind", MILVUS)
def test_an_index_of_another_embedder_is_one_line(kind, cache, tmp_path, monkeypatch):
    import numpy as np

    from core.index.milvus_index import MilvusIndex

    uri = milvus_location(kind, tmp_path, "other")
    rows = load_catalog(cache).rows
    vecs = np.random.default_rng(0).normal(size=(len(rows), 8)).astype(np.float32)
    items = [{"product_id": r.product_id, "image": r.image} for r in rows]
    MilvusIndex.from_arrays(uri, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), items,
                            {r.product_id: dict(r.fields) for r in rows}, {"spec": "other-model", "dim": 8},
                            catalog_root=cache)
    monkeypatch.setenv("VPS_INDEX", uri)
    at = AppTest.from_file(str(ROOT / PAGES[0]), default_timeout=TIMEOUT)
    at.query_params["catalog"] = f"index:{uri}"
    run(at)
    assert errors(at) == [md(f"index {uri} was built with embedder other-model: pick that embedder in the sidebar")]
