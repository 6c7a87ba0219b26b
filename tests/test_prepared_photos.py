"""The classifier page's photos embedded ahead (issue 26): written by ``python -m core prepare``, checked by what
produced them (embedder, weights, each photo's content), so a changed photo or other weights is embedded again;
and a person opening the demo's Classifier page gets it without embedding a photo."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.config.defaults import DEFAULT_SPEC
from core.config.paths import DEMO_CATALOG, SAMPLE_CATALOG
from core.embedding import load_embedder
from core.embedding.available import shipped_head_spec
from core.explore.photo_sets import PhotoVectors, photo_vectors
from core.explore.prepared_photos import page_photos, prepared_photos, write_prepared_photos
from tests.helpers import PixelEmbedder
from tests.test_app import errors, run
from tests.test_app_progress import bars  # noqa: F401 - a fixture
from tests.test_app_state import ROOT, TIMEOUT

COLOURS = ["red", "green", "blue", "yellow"]


@pytest.fixture
def shop(tmp_path) -> Path:
    """A catalog folder with a training and a held-out set of photos beside it, as the demo has, and a test split
    (never prepared)."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "photos").mkdir()
    for c in COLOURS:
        Image.new("RGB", (32, 32), c).save(tmp_path / "catalog" / f"{c}.png")
        for split in ("train", "val", "test"):
            photo = Image.new("RGB", (32, 32), c).rotate(45 if split == "val" else 0)
            photo.save(tmp_path / "photos" / f"{c}-{split}.png")
    (tmp_path / "catalog" / "catalog.csv").write_text("image,product_id\n" + "".join(f"{c}.png,{c}\n" for c in COLOURS))
    for split in ("train", "val", "test"):
        with open(tmp_path / f"queries-{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "product_id"])
            w.writerows([(f"photos/{c}-{split}.png", c) for c in COLOURS])
    return tmp_path / "catalog"


def test_prepared_photos_are_used_only_while_they_match(shop):
    emb = PixelEmbedder()
    photos = page_photos(shop)
    assert len(photos) == 8 and not any("test" in p.name for p in photos)  # training and held out; no test split
    write_prepared_photos(shop, emb)
    got = prepared_photos(shop, emb)
    fresh, _ = photo_vectors(emb, photos)
    assert sorted(got) == sorted(p.resolve() for p in photos)
    for p, v in zip(photos, fresh):
        assert float(got[p.resolve()] @ v) > 0.999  # float16 on disk, the same vector
    Image.new("RGB", (32, 32), "white").save(photos[0])  # a changed photo is embedded again
    assert photos[0].resolve() not in prepared_photos(shop, emb) and len(prepared_photos(shop, emb)) == 7
    assert prepared_photos(shop, PixelEmbedder("other-pixels")) == {}  # another embedder's are not used
    memo = PhotoVectors()
    assert memo.seed(emb, prepared_photos(shop, emb)) == 7
    seen: list[tuple[int, int]] = []
    memo(emb, photos, "photos", lambda i, n: seen.append((i, n)))
    assert seen and seen[-1] == (1, 1)  # only the changed photo is embedded


@pytest.mark.parametrize("catalog", [SAMPLE_CATALOG, DEMO_CATALOG])
def test_the_shipped_photo_vectors_are_current(catalog):
    """Rebuilt by ``python -m core prepare`` (``python -m core demo`` for the demo) whenever the photos or the
    networks change: this fails until then."""
    for spec in (DEFAULT_SPEC, shipped_head_spec(catalog)):
        if spec:
            emb = load_embedder(spec)
            assert len(prepared_photos(catalog, emb)) == len(page_photos(catalog)) > 0, f"stale: {spec}"


@pytest.mark.slow
def test_a_person_opens_the_demo_classifier_page_without_embedding_a_photo(tmp_path, monkeypatch, bars):  # noqa: F811
    """The demo ships its photos' vectors for both networks (``python -m core demo`` writes them), still valid for
    the photos and networks in the repository, and its classifier fitted ahead: the page compares at once."""
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages" / "3_Classifier_vs_neighbours.py"), default_timeout=TIMEOUT)
    at.query_params["catalog"] = "demo"
    run(at)
    assert not errors(at), errors(at)
    assert [m.label for m in at.metric] == ["Classifier", "Closest catalog picture (pretrained)",
                                            "Closest catalog picture (trained head)"]
    texts = [t for _, t in bars]
    assert not [t for t in texts if t.startswith("Embedding")], texts  # no photo embedded: all prepared
    assert not [t for t in texts if t.startswith("Training the classifier")], texts  # fitted ahead too
    assert np.isfinite([float(m.value.rstrip("%")) for m in at.metric]).all()


@pytest.mark.parametrize("zooms", [(1.0,), (1.0, 0.8, 0.65)])
def test_a_page_counts_each_photo_once_all_its_views_are_embedded(shop, zooms):
    """A trained head embeds a photo as several zooms (several passes): the count a page shows moves with the
    photos whose every view is done, never ends before the last pass, and the vectors are those of one call."""
    emb = PixelEmbedder()
    emb.query_zooms = zooms
    photos = page_photos(shop) * 3  # 24 photos: three chunks
    ticks: list[tuple[int, int]] = []
    got, errors = photo_vectors(emb, photos, "photos", lambda i, n: ticks.append((i, n)))
    want, _ = photo_vectors(emb, photos)
    assert not errors and np.allclose(got, want, atol=1e-6)
    assert ticks == [(0, 24), (8, 24), (16, 24), (24, 24)]
