"""The bundled real-photo demo (``demo_catalog/``): its layout, that only train-split photos are in it, that
``python -m core demo`` rebuilds it (the photos byte for byte from the dataset; the head from the bundled photos,
to the same weights' digest), and that the app offers it."""

from __future__ import annotations

import csv
import filecmp
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.config.paths import DEMO_CATALOG, DEMO_ROOT
from core.data.demo import EXAMPLES_PER_PRODUCT, TRAIN_PER_PRODUCT, file_sha256, photos_digest, write_demo_photos
from core.data.query_sets import example_labels, example_photos
from core.embedding.available import shipped_head_spec
from tests.conftest import DATASETS, ROOT

GROCERY = DATASETS / "grocery"
HELD_BACK = ("val/", "validation/", "test/")


def rows(name: str) -> list[dict[str, str]]:
    with open(DEMO_ROOT / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_layout_products_photos_and_licence():
    catalog = rows("catalog/catalog.csv")
    assert len(catalog) == 81 and len({r["product_id"] for r in catalog}) == 81
    assert {"product_id", "image", "title", "category", "description"} <= set(catalog[0])
    assert all(r["title"] and r["category"] and (DEMO_CATALOG / r["image"]).is_file() for r in catalog)
    train, examples = rows("queries-train.csv"), rows("queries-examples.csv")
    assert Counter(r["product_id"] for r in train) == dict.fromkeys((r["product_id"] for r in catalog),
                                                                   TRAIN_PER_PRODUCT)
    assert Counter(r["product_id"] for r in examples) == dict.fromkeys((r["product_id"] for r in catalog),
                                                                      EXAMPLES_PER_PRODUCT)
    category = {r["product_id"]: r["category"] for r in catalog}
    for r in train + examples:
        assert (DEMO_ROOT / r["image"]).is_file() and r["category"] == category[r["product_id"]]
    train_photos = {Path(r["image"]).name for r in train}
    assert not train_photos & {Path(r["image"]).name for r in examples}  # examples are never trained on
    every_path = [r["image"] for r in train + examples + catalog]
    assert not [p for p in every_path if any(h in p for h in HELD_BACK)]
    assert "MIT License" in (DEMO_ROOT / "LICENSE").read_text() and "GroceryStoreDataset" in (
        DEMO_ROOT / "README.md").read_text()
    size = sum(p.stat().st_size for p in DEMO_ROOT.rglob("*") if p.is_file())
    assert size < 25e6


def test_the_app_offers_the_examples_in_file_order_with_their_labels():
    examples = rows("queries-examples.csv")
    assert [p.relative_to(DEMO_ROOT).as_posix() for p in example_photos(DEMO_CATALOG)] == [r["image"]
                                                                                          for r in examples]
    assert example_labels(DEMO_CATALOG) == {Path(r["image"]).name: r["product_id"] for r in examples}


def test_the_head_records_what_produced_it():
    cfg = json.loads((DEMO_ROOT / "head" / "config.json").read_text())
    made = cfg["produced_by"]
    assert made["photos_sha256"] == photos_digest(DEMO_ROOT)  # the bundled photos are the ones it was trained on
    assert made["weights_sha256"] == file_sha256(DEMO_ROOT / "head" / "model.safetensors")
    assert made["base"] == cfg["base"] and "--seed" in made["train_metric_flags"]
    assert shipped_head_spec(DEMO_CATALOG) == f"{cfg['base']}+head:{(DEMO_ROOT / 'head').resolve()}"


def demo_copy(dst: Path) -> Path:
    """The bundled photos and CSVs, without the head."""
    shutil.copytree(DEMO_ROOT, dst, ignore=shutil.ignore_patterns("head"))
    return dst


@pytest.mark.slow
def test_the_documented_command_rebuilds_the_same_head(tmp_path):
    """``python -m core demo --head-only`` (the rebuild the demo's README documents) on a copy of the bundled
    photos, in a fresh cache: the same weights, byte for byte, and the same config.json."""
    out = demo_copy(tmp_path / "demo")
    env = {**os.environ, "VPS_CACHE": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "core", "demo", "--head-only", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    shipped = json.loads((DEMO_ROOT / "head" / "config.json").read_text())
    assert file_sha256(out / "head" / "model.safetensors") == shipped["produced_by"]["weights_sha256"], (
        "the rebuilt head differs from the shipped one: if the trainer changed on purpose, rebuild it with "
        "python -m core demo --head-only and commit demo_catalog/head")
    assert (out / "head" / "config.json").read_text() == (DEMO_ROOT / "head" / "config.json").read_text()


@pytest.mark.skipif(not (GROCERY / "dataset" / "train.txt").is_file(), reason="GroceryStoreDataset not here")
def test_the_photos_are_rebuilt_byte_for_byte_from_the_dataset(tmp_path):
    rep = write_demo_photos(GROCERY, tmp_path / "demo")
    assert rep.products == 81 and not rep.skipped
    for sub in ("catalog/images", *(f"photos/{k}/{r['product_id']}" for k in ("train", "examples")
                                   for r in rows("catalog/catalog.csv"))):
        names = sorted(p.name for p in (DEMO_ROOT / sub).iterdir())
        assert sorted(p.name for p in (tmp_path / "demo" / sub).iterdir()) == names
        assert filecmp.cmpfiles(DEMO_ROOT / sub, tmp_path / "demo" / sub, names, shallow=False)[0] == names
    for name in ("catalog/catalog.csv", "queries-train.csv", "LICENSE"):
        assert (tmp_path / "demo" / name).read_bytes() == (DEMO_ROOT / name).read_bytes()
    # the examples are the same rows; the command then puts first the ones the app should show first
    with open(tmp_path / "demo" / "queries-examples.csv", newline="") as f:
        assert sorted(map(tuple, map(dict.values, csv.DictReader(f)))) == sorted(
            tuple(r.values()) for r in rows("queries-examples.csv"))


def test_read_products_never_opens_held_back_splits(tmp_path):
    """A train.txt line that points into val/ is refused: only train-split photos can enter the demo."""
    from PIL import Image

    from core.data.demo import read_products

    root = tmp_path / "dataset"
    for rel in ("train/A/a1.jpg", "val/A/v1.jpg", "iconic/A.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), "red").save(root / rel)
    (root / "classes.csv").write_text("name,id,coarse,cid,iconic,desc\nA-B,0,Fruit-X,0,/iconic/A.jpg,/none.txt\n")
    (root / "train.txt").write_text("train/A/a1.jpg, 0, 0\nval/A/v1.jpg, 0, 0\n")
    products, skipped = read_products(root)
    assert [p.photos for p in products] == [(root / "train/A/a1.jpg",)] and products[0].category == "Fruit X"
    assert skipped == ["train.txt line 2: not a train photo"]


@pytest.mark.parametrize("network", ["pretrained", "trained"])
def test_the_shipped_demo_vectors_are_current(network):
    """``python -m core demo`` writes the catalog's vectors for both networks beside it, named so that they hold
    on any clone (the head by its weights, not its folder); the app then builds the demo's indexes from them.
    This fails until they are rebuilt after a change of the catalog, the model or the head."""
    import numpy as np

    from core.config.defaults import DEFAULT_SPEC
    from core.data.catalog import load_catalog
    from core.embedding import load_embedder
    from core.index.backend import embed_rows
    from core.index.prepared import prepared_vectors

    spec = DEFAULT_SPEC if network == "pretrained" else shipped_head_spec(DEMO_CATALOG)
    cat, emb = load_catalog(DEMO_CATALOG), load_embedder(spec)
    vecs = prepared_vectors(cat, emb)
    assert vecs is not None, "stale or missing: run python -m core demo --head-only"
    fresh, _, _ = embed_rows(cat, cat.rows[:8], emb, False)
    assert float(np.min(np.sum(vecs[:8] * np.asarray(fresh), axis=1))) > 0.999  # float16, the same vectors
