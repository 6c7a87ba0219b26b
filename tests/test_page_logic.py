"""What the pages used to compute themselves, now in ``core``: catalog keys, labelled query sets, label and colour
choices, score explanations and trained-head specs."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from core.config.paths import DEMO_CATALOG, SAMPLE_CATALOG
from core.data.catalog import load_catalog
from core.data.query_sets import query_sets
from core.embedding.head_config import CONFIG, WEIGHTS, head_specs
from core.explore.disagreements import label_choices
from core.explore.map_view import colour_columns
from core.index.product_index import Hit, ProductIndex
from core.index.workspace import DEMO_KEY, SAMPLE_KEY, catalog_keys, catalog_label
from core.search.explain import score_parts, top_attributes
from tests.helpers import PixelEmbedder


@pytest.fixture
def catalog(tmp_path):
    root = tmp_path / "shop" / "catalog"
    root.mkdir(parents=True)
    for c in ["red", "green", "blue"]:
        Image.new("RGB", (32, 32), c).save(root / f"{c}.png")
    (root / "catalog.csv").write_text("image,product_id,title,category,colour\n"
                                      "red.png,R,Red *bold*,a,red\ngreen.png,G,Green,b,green\nblue.png,B,Blue,a,blue\n")
    return root


def test_catalog_keys_name_the_sample_and_imports(tmp_path, monkeypatch, catalog):
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    assert catalog_keys() == {SAMPLE_KEY: SAMPLE_CATALOG, DEMO_KEY: DEMO_CATALOG}  # the bundled real-photo demo
    imp = tmp_path / "cache" / "imports"
    (imp / "grocery" / "catalog").mkdir(parents=True)
    (imp / "grocery" / "catalog" / "catalog.csv").write_text("image,product_id\n")
    (imp / "half-imported").mkdir()  # no catalog.csv: not offered
    assert list(catalog_keys()) == [SAMPLE_KEY, DEMO_KEY, "grocery"]
    assert {catalog_label(k): p for k, p in catalog_keys().items()} == {
        "Sample catalog": SAMPLE_CATALOG, "Grocery shop photos (real)": DEMO_CATALOG,
        "Dataset: grocery": imp / "grocery" / "catalog"}


def test_labelled_query_sets_next_to_a_catalog(catalog):
    assert query_sets(catalog) == []
    (catalog / "queries.csv").write_text("image,product_id\nred.png,R\n")
    (catalog.parent / "validation" / "red").mkdir(parents=True)  # a held-out <category>/<image> tree
    Image.new("RGB", (8, 8), "red").save(catalog.parent / "validation" / "red" / "r1.png")
    assert [s.path for s in query_sets(catalog)] == [catalog / "queries.csv", catalog.parent / "validation"]


def test_label_and_colour_choices(tmp_path, catalog):
    idx, _ = ProductIndex.build(load_catalog(catalog), PixelEmbedder(), tmp_path / "idx")
    assert label_choices(idx) == ["category", "colour", "product_id"]  # the free-text title is no class
    rows = [{"x": 0, "y": 0, "image": "a", "product_id": "R", "title": "t", "colour": "red", "category": "a"}]
    assert colour_columns(rows) == ["category", "product_id", "title", "colour"]
    assert colour_columns([]) == []


def test_score_parts_sum_to_the_score_and_recover_scores():
    hit = Hit("R", 1.3, 1, "a.png", {}, 0.9, {"similarity": 0.9, "colour": 0.4, "pattern": 0.0})
    parts = score_parts(hit, {"similarity": 1.0, "colour": 0.5, "pattern": 0.0})
    assert sum(p.contribution for p in parts) == pytest.approx(hit.score)
    assert [(p.dimension, p.score) for p in parts] == [("similarity", 0.9), ("colour", 0.8), ("pattern", None)]
    assert [p.label for p in parts] == ["0.90 × 1.00", "0.80 × 0.50", "weight 0"]
    assert top_attributes({"colour": {"red": 0.2, "blue": 0.7, "green": 0.05, "grey": 0.05}}, 2) == {
        "colour": [("blue", 0.7), ("red", 0.2)]}


def test_head_specs_use_the_base_embedder(tmp_path):
    d = tmp_path / "heads" / "h1"
    d.mkdir(parents=True)
    (d / CONFIG).write_text("{}")
    (d / WEIGHTS).write_bytes(b"")
    assert head_specs("efficientnet-lite0+head:/old", tmp_path) == [f"efficientnet-lite0+head:{d}"]
    assert head_specs("efficientnet-lite0", tmp_path / "none") == []
    head = {"in_dim": 1904, "out_dim": 256, "hidden": 1024}
    (d / CONFIG).write_text(json.dumps({"base": "efficientnet-lite0:ms", "head": head}))
    assert head_specs("efficientnet-lite0", tmp_path) == [f"efficientnet-lite0:ms+head:{d}"]  # its own base
