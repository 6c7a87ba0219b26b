"""The app as a product: readable columns, query sets a click away, embedders that load here, incremental
attribute artefacts, fitted ranking weights and the "no close match" threshold."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from core.data.columns import ColumnsError, catalog_column_types, column_types
from core.data.query_sets import example_photos, query_sets
from core.search.facets import facets
from tests.conftest import SAMPLE, dataset


@pytest.fixture(scope="module")
def grocery_import(tmp_path_factory):
    from core.data.importers import import_grocery

    out = tmp_path_factory.mktemp("grocery-import")
    import_grocery(dataset("grocery") / "dataset", out)
    return out


# ---------------------------------------------------------------- column typing
def test_sample_columns_are_typed_from_the_data(sample_catalog):
    t = column_types(sample_catalog.products)
    assert t.kinds == {"title": "title", "category": "category", "colour": "categorical", "pattern": "categorical",
                       "price": "price"}
    assert set(t.filterable) == {"category", "colour", "pattern", "price"}
    card = t.card(sample_catalog.products["P0000"], "P0000")
    assert (card.title, card.category, card.price) == ("Blue checked bag", "bag", "62.20")
    assert dict(card.details) == {"colour": "blue", "pattern": "checks"} and not card.long_text


@pytest.mark.datasets
def test_grocery_columns_hide_ids_and_fold_long_text(grocery_import):
    cat_dir = grocery_import / "catalog"
    t = catalog_column_types(cat_dir)
    assert t.kinds["title"] == "title" and t.kinds["category"] == "category"
    assert t.kinds["description"] == "text" and t.kinds["class_id"] == "id" and t.kinds["kind"] == "hidden"
    from core.data.catalog import load_catalog

    products = load_catalog(cat_dir).products
    offered = {f.column for f in facets(products, types=t)}
    assert offered == {"category"}  # no class_id range slider, no description or title lists
    card = t.card(next(iter(products.values())))
    assert card.long_text and card.long_text[0][0] == "description"
    assert "class_id" not in dict(card.details) and "kind" not in dict(card.details)


def test_inference_rules_on_made_up_columns():
    n = 30
    products = {f"p{i}": {"name": f"Thing {i}", "sku": f"SKU{i:05d}", "stock": str(i % 7), "ean": str(4000 + i),
                          "brand": f"brand {i % 3}", "notes": f"a long free text about thing {i}. " * 4, "size": "M"}
                for i in range(n)}
    k = column_types(products).kinds
    assert k == {"name": "title", "sku": "id", "stock": "numeric", "ean": "id", "brand": "categorical",
                 "notes": "text", "size": "hidden"}


def test_columns_json_overrides_the_inference(tmp_path, sample_catalog):
    shutil.copy(SAMPLE / "catalog.csv", tmp_path / "catalog.csv")
    (tmp_path / "columns.json").write_text(json.dumps({"pattern": "info", "colour": "title"}))
    t = catalog_column_types(tmp_path, sample_catalog.products)
    assert t.kinds["pattern"] == "info" and t.source["pattern"] == "columns.json"
    assert t.kinds["colour"] == "title" and t.kinds["title"] == "info"  # one title: the one asked for
    assert "pattern" not in {f.column for f in facets(sample_catalog.products, types=t)}
    (tmp_path / "columns.json").write_text(json.dumps({"pattern": "sparkly"}))
    with pytest.raises(ColumnsError, match="unknown kind 'sparkly'"):
        catalog_column_types(tmp_path, sample_catalog.products)


# ---------------------------------------------------------------- query sets and example photos
def test_sample_query_sets_and_examples():
    sets = query_sets(SAMPLE)
    assert [(s.name, s.kind, s.n) for s in sets] == [("queries.csv", "csv", 120)]
    assert "product_id" in sets[0].labels and sets[0].root == SAMPLE
    ex = example_photos(SAMPLE)
    assert len(ex) == 120 and ex == sorted(ex) and all(p.parent == SAMPLE / "queries" for p in ex)


@pytest.mark.datasets
def test_imported_query_sets_and_examples(grocery_import):
    sets = {s.name: s for s in query_sets(grocery_import / "catalog")}
    assert set(sets) == {"queries-train.csv", "queries-val.csv"}
    assert sets["queries-val.csv"].n == 296 and sets["queries-val.csv"].split == "val"
    assert set(sets["queries-val.csv"].labels) == {"product_id", "category"}
    ex = example_photos(grocery_import / "catalog", n=8)
    assert len(ex) == 8 and all(p.is_file() and "queries" in p.parts for p in ex)  # the val photos
    assert len({p.parent for p in ex}) == 8  # spread over products


def test_query_folder_tree_is_a_labelled_set(tmp_path):
    from PIL import Image

    for cat in ("mug", "hat"):
        (tmp_path / "queries" / cat).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "queries" / cat / "a.jpg")
    (s,) = query_sets(tmp_path)
    assert (s.kind, s.labels, s.n) == ("folder", ("category",), 2)
    assert sorted(p.parent.name for p in example_photos(tmp_path)) == ["hat", "mug"]


# ---------------------------------------------------------------- embedders that load here
def test_available_embedders_lists_what_loads_offline(tiny_clip, tmp_path, monkeypatch):
    from core.config.paths import cache_dir
    from core.embedding import available_embedders, load_embedder

    monkeypatch.setenv("VPS_CACHE", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    got = available_embedders()
    assert got.specs[0] == "efficientnet-lite0" and "efficientnet-lite0:ms" in got.specs
    assert not any(s.startswith("open_clip") for s in got.specs)
    assert len(got.howto) == 1 and "open_clip" in got.howto[0] and str(cache_dir() / "open_clip") in got.howto[0]
    for spec in got.specs:
        assert load_embedder(spec).dim > 0  # every listed spec loads, here, offline

    ckpt = cache_dir() / "open_clip" / "vps-tiny-vit" / "tiny.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(tiny_clip.model.state_dict(), ckpt)
    head = cache_dir() / "models" / "h1"
    head.mkdir(parents=True)
    (head / "config.json").write_text(json.dumps({"base": "efficientnet-lite0:ms"}))
    (head / "model.safetensors").write_bytes(b"")
    got = available_embedders()
    assert f"open_clip:vps-tiny-vit:{ckpt}" in got.specs and not got.howto
    assert f"efficientnet-lite0:ms+head:{head}" in got.specs
    assert load_embedder(f"open_clip:vps-tiny-vit:{ckpt}").dim == tiny_clip.dim


def test_cached_open_clip_tag_is_found_without_network(tmp_path, monkeypatch):
    from core.embedding.openclip import cached_weights

    hf = tmp_path / "hf"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hf))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cached_weights("ViT-B-32", "laion2b_s34b_b79k") is None
    snap = hf / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("abc")
    (snap / "snapshots" / "abc").mkdir(parents=True)
    (snap / "snapshots" / "abc" / "open_clip_pytorch_model.bin").write_bytes(b"x")
    got = cached_weights("ViT-B-32", "laion2b_s34b_b79k")
    assert got is not None and got.name == "open_clip_pytorch_model.bin"
