"""The classifier page's classifiers fitted ahead (issue 26): written by ``python -m core prepare`` (``python -m core
demo``), used only for the very inputs they were fitted on (same label, training vectors, labels, settings) and
by the same embedder and weights; anything else is fitted again. A person opening the sample's page gets its
figures without a classifier being trained, and the same figures as a fresh fit."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.explore.disagreements as disagreements
from core.config.defaults import DEFAULT_SPEC
from core.config.paths import DEMO_CATALOG, SAMPLE_CATALOG
from core.data.catalog import load_catalog
from core.embedding import load_embedder
from core.explore.disagreements import compare
from core.explore.prepared_classifier import (
    Classifiers,
    prepared_classifier_path,
    prepared_classifiers,
    write_prepared_classifiers,
)
from core.index import build_index
from tests.helpers import PixelEmbedder
from tests.test_app import errors, run, start
from tests.test_app_progress import bars  # noqa: F401 - a fixture

COLOURS = ["red", "green", "blue", "yellow"]
TRAINING = "Training the classifier"


@pytest.fixture
def shop(tmp_path) -> Path:
    """A catalog of four colours, two training photos of each beside it and one held-out photo of each."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "photos").mkdir()
    for c in COLOURS:
        Image.new("RGB", (32, 32), c).save(tmp_path / "catalog" / f"{c}.png")
        for name, turn in (("train1", 0), ("train2", 10), ("val", 45)):
            Image.new("RGB", (32, 32), c).rotate(turn).save(tmp_path / "photos" / f"{c}-{name}.png")
    (tmp_path / "catalog" / "catalog.csv").write_text("image,product_id\n" + "".join(f"{c}.png,{c}\n" for c in COLOURS))
    for split, names in (("train", ("train1", "train2")), ("val", ("val",))):
        with open(tmp_path / f"queries-{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "product_id"])
            w.writerows([(f"photos/{c}-{n}.png", c) for c in COLOURS for n in names])
    return tmp_path / "catalog"


def _fits(monkeypatch) -> list[str]:
    """The labels of every classifier fitted from now on."""
    fitted: list[str] = []
    fit = disagreements.train_head

    def counting(label, *args, **kwargs):
        fitted.append(label)
        return fit(label, *args, **kwargs)

    monkeypatch.setattr(disagreements, "train_head", counting)
    return fitted


def test_prepared_classifiers_are_used_only_for_their_own_inputs(shop, tmp_path, monkeypatch):
    emb = PixelEmbedder()
    path = write_prepared_classifiers(shop, emb)
    assert path == prepared_classifier_path(shop, emb)
    meta = json.loads(str(np.load(path)["meta"]))
    assert meta["producer"]["spec"] == emb.spec and meta["catalog_fingerprint"]
    assert len(meta["training_photos"]) == 8 and all(len(d) == 16 for _, d in meta["training_photos"])
    index, _ = build_index(load_catalog(shop), emb, tmp_path / "index")
    queries, train = shop.parent / "queries-val.csv", shop.parent / "queries-train.csv"
    fitted = _fits(monkeypatch)
    fresh = compare(index, emb, queries, "product_id", train=train)  # fitted here, as before
    assert fitted == ["product_id"]
    ahead = prepared_classifiers(shop, emb)
    assert len(ahead.heads) == 1
    got = compare(index, emb, queries, "product_id", train=train, classifiers=ahead)
    assert fitted == ["product_id"] and not ahead.fitted  # the prepared one: nothing fitted
    assert [c.to_dict() for c in got.cases] == [c.to_dict() for c in fresh.cases]  # the same answers
    assert json.dumps(got.classifier.report) == json.dumps(fresh.classifier.report)  # NaN: no cross-validation
    assert np.array_equal(got.classifier.coef, fresh.classifier.coef)

    assert prepared_classifiers(shop, PixelEmbedder("other-pixels")).heads == {}  # another embedder's: none
    Image.new("RGB", (32, 32), "white").save(shop.parent / "photos" / "red-train1.png")  # other training vectors
    again = prepared_classifiers(shop, emb)
    compare(index, emb, queries, "product_id", train=train, classifiers=again)
    assert fitted == ["product_id", "product_id"] and len(again.fitted) == 1  # stale: fitted again, kept
    compare(index, emb, queries, "product_id", train=train, classifiers=again)
    assert len(fitted) == 2  # ...and reused


def test_an_unreadable_file_means_no_prepared_classifier(shop):
    emb = PixelEmbedder()
    path = prepared_classifier_path(shop, emb)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip")
    assert isinstance(prepared_classifiers(shop, emb), Classifiers) and prepared_classifiers(shop, emb).heads == {}


@pytest.mark.parametrize("catalog", [SAMPLE_CATALOG, DEMO_CATALOG])
def test_the_shipped_classifiers_are_current(catalog, tmp_path, monkeypatch):
    """Rebuilt by ``python -m core prepare`` (``python -m core demo`` for the demo) whenever the photos, the
    catalog or the network change: this fails until then."""
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    emb = load_embedder(DEFAULT_SPEC)
    shipped = prepared_classifiers(catalog, emb)
    assert shipped.heads, "none shipped"
    fitted = _fits(monkeypatch)
    out = tmp_path / "again"
    out.mkdir()
    monkeypatch.setattr("core.explore.prepared_classifier.prepared_classifier_path",
                        lambda root, e: out / "classifier.npz")
    write_prepared_classifiers(catalog, emb)  # the default comparison, fitted again from the shipped inputs
    remade = json.loads(str(np.load(out / "classifier.npz")["meta"]))
    assert fitted and {c["key"] for c in remade["classifiers"]} <= set(shipped.heads), "stale"


def _page(at: AppTest) -> AppTest:
    at.switch_page("pages/3_Classifier_vs_neighbours.py")
    return run(at)


def test_a_person_opens_the_sample_classifier_page_without_a_classifier_trained(tmp_path, monkeypatch,
                                                                                bars):  # noqa: F811
    """A fresh cache, the sample (the default catalog), the page's defaults: its classifier was fitted ahead, so
    the figures come without training; a copy whose prepared classifier was made by other weights trains it
    again, with progress, and shows the same figures."""
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    fitted = _fits(monkeypatch)
    at = _page(start())
    assert not errors(at), errors(at)
    figures = [(m.label, m.value) for m in at.metric]
    assert [label for label, _ in figures] == ["Classifier", "Closest catalog picture (pretrained)"]
    assert fitted == [] and not [t for _, t in bars if t.startswith(TRAINING)]  # nothing trained

    copy = shutil.copytree(SAMPLE_CATALOG, tmp_path / "sample_copy")
    path = prepared_classifier_path(copy, load_embedder(DEFAULT_SPEC))
    with np.load(path) as f:
        arrays = dict(f)
    meta = json.loads(str(arrays.pop("meta")))
    meta["producer"]["weights_sha256"] = "0" * 16  # made by other weights: stale
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    at = _page(start(catalog=copy))
    assert not errors(at), errors(at)
    assert fitted == ["product_id"] and [t for _, t in bars if t.startswith(TRAINING)]  # trained, with progress
    assert [(m.label, m.value) for m in at.metric] == figures  # the same figures as the prepared classifier's
