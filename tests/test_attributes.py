"""Attribute scorers on inputs whose answer is known; heads at chance are not offered; the artefact cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.search.attributes import (
    PixelColourScorer,
    attributes_for,
    categorical_columns,
    rgb_to_lab,
    train_head,
    validate,
    zero_shot_head,
)
from core.search.attributes.heads import OTHER

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 160, 0), "yellow": (250, 220, 0),
           "purple": (120, 40, 160), "black": (10, 10, 10)}


def test_lab_reference_values():
    np.testing.assert_allclose(rgb_to_lab([255, 255, 255]), [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(rgb_to_lab([255, 0, 0]), [53.24, 80.09, 67.20], atol=0.05)


@pytest.mark.parametrize("name", list(COLOURS))
def test_plain_colour_image(name):
    s = PixelColourScorer().score(Image.new("RGB", (80, 80), COLOURS[name]))
    assert max(s, key=s.get) == name
    assert sum(s.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(COLOURS))
def test_product_on_white_background(name):
    """The backdrop is suppressed: a small product on white still reads as its own colour."""
    img = Image.new("RGB", (120, 120), (255, 255, 255))
    img.paste(COLOURS[name], (45, 40, 80, 85))  # about 11% of the picture
    s = PixelColourScorer().score(img)
    assert max(s, key=s.get) == name and s[name] > 0.8


def test_centre_outweighs_corners():
    img = Image.new("RGB", (100, 100), (0, 0, 255))
    img.paste((255, 0, 0), (30, 30, 70, 70))  # red centre on a blue (non-uniform-free) frame
    img.paste((0, 160, 0), (0, 0, 20, 100))  # the border is not uniform: no background to drop
    s = PixelColourScorer().score(img)
    assert s["red"] > s["green"]


def test_categorical_columns_pool_rare_values_and_skip_titles():
    products = {f"p{i}": {"title": f"t{i}", "kind": "ab"[i % 2], "price": str(i),
                          "cat": ["x", "y"][i % 2] if i < 20 else f"rare{i}"} for i in range(30)}
    cols = categorical_columns(products, ["title", "kind", "price", "cat"])
    assert set(cols) == {"kind", "cat"}
    assert cols["cat"] == ["x", "y", OTHER]


def _blobs(n_per: int, informative: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = ["a"] * n_per + ["b"] * n_per + ["c"] * n_per
    X = rng.normal(size=(3 * n_per, 16))
    if informative:
        X[:, :3] += 4 * np.eye(3)[np.repeat(np.arange(3), n_per)]
    else:
        rng.shuffle(labels)
    return X, labels, [f"p{i}" for i in range(len(labels))]


def test_informative_head_is_offered_and_scores():
    X, y, g = _blobs(20, informative=True)
    h = train_head("cat", ["a", "b", "c"], X, y, g)
    assert h.report["offered"] and h.report["cv_accuracy"] > 0.9
    s = h.score(X[0])
    assert max(s, key=s.get) == "a" and sum(s.values()) == pytest.approx(1.0)


def test_head_at_chance_is_not_offered():
    X, y, g = _blobs(20, informative=False)
    h = train_head("cat", ["a", "b", "c"], X, y, g)
    assert not h.report["offered"]
    assert h.report["baseline"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("values", [["a", "b"], ["a", "b", "c"]])
def test_standardised_head_equals_sklearn_pipeline(values):
    """The classifier page's head (standardised, no cross-validation) gives sklearn's probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, g = _blobs(20, informative=True)
    X = (X * np.linspace(0.01, 3, X.shape[1]) + 0.5).astype(np.float32)  # uneven scales, off-centre
    keep = [i for i, lab in enumerate(y) if lab in values]
    X, y, g = X[keep], [y[i] for i in keep], [g[i] for i in keep]
    h = train_head("cat", values, X, y, g, folds=0, standardise=True, max_iter=500)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    assert h.values == list(ref.classes_) and h.report["folds"] == 0 and not h.report["offered"]
    np.testing.assert_allclose(h.score_many(X), ref.predict_proba(X), atol=1e-5)
    labels, probs = h.predict(X)
    assert labels == list(ref.predict(X)) and h.report["train_accuracy"] == pytest.approx(ref.score(X, y))
    np.testing.assert_allclose(probs, ref.predict_proba(X).max(1), atol=1e-5)


def test_zero_shot_head(tiny_clip):
    values = ["red", "striped", "shoe"]
    head = zero_shot_head(tiny_clip, "thing", values)
    # vectors equal to each value's prompt embedding are recognised; random vectors are at chance
    assert validate(head, np.repeat(head.text, 5, 0), np.repeat(values, 5).tolist()).report["offered"]
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(60, tiny_clip.dim))
    labels = rng.choice(values, 60).tolist()
    assert not validate(head, noise, labels).report["offered"]


def test_sample_attributes_artefact(sample_index, embedder):
    aset = attributes_for(sample_index, embedder)
    assert {"pixel_colour", "category", "pattern"} <= set(aset.dims)
    assert aset.reports["category"]["cv_accuracy"] > 0.9
    assert aset.meta["index_fingerprint"] == sample_index.fingerprint
    assert aset.meta["embedder"]["spec"] == embedder.spec
    # products' catalog scores: labelled columns are one-hot, pixel colours are distributions
    pc = aset.dims["pixel_colour"].catalog
    assert pc.shape == (len(aset.products), len(aset.dims["pixel_colour"].values))
    np.testing.assert_allclose(pc.sum(1), 1, atol=1e-6)
    row = aset.products.index("P0000")  # a blue bag
    assert aset.dims["pixel_colour"].values[pc[row].argmax()] == "blue"
    again = attributes_for(sample_index, embedder)  # loaded from the cache, same content
    assert list(again.dims) == list(aset.dims)
    np.testing.assert_allclose(again.dims["pattern"].catalog, aset.dims["pattern"].catalog)
