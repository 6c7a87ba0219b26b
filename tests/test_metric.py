"""Metric learning: training improves retrieval on a small real subset; saved heads load back exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.catalog import load_catalog
from core.data.import_datasets import import_grocery
from core.embedding import load_embedder
from core.embedding.head import HeadEmbedder
from core.index.product_index import ProductIndex
from core.index.workspace import index_state
from core.metric.features import cached_features, embed_cached
from core.metric.train import TrainConfig, recall_at, train_head
from tests.conftest import dataset
from tests.helpers import PixelEmbedder, write_head

# hard look-alikes: packaged juices/milks and apples are where ImageNet features confuse products
CLASSES = ["Golden-Delicious", "Granny-Smith", "Pink-Lady", "Red-Delicious", "Royal-Gala", "Bravo-Apple-Juice",
           "Bravo-Orange-Juice", "Arla-Standard-Milk", "Arla-Medium-Fat-Milk", "Arla-Lactose-Medium-Fat-Milk"]
VIEWS_PER_CLASS = 12


@pytest.fixture(scope="module")
def grocery_subset(tmp_path_factory):
    """A 10-product GroceryStoreDataset (hard links into the shared copy), imported."""
    src = dataset("grocery") / "dataset"
    root = tmp_path_factory.mktemp("grocery-subset") / "dataset"
    root.mkdir()
    lines = (src / "classes.csv").read_text().splitlines()
    keep = [ln for ln in lines[1:] if ln.split(",")[0] in CLASSES]
    ids = {ln.split(",")[1] for ln in keep}
    (root / "classes.csv").write_text("\n".join([lines[0], *keep]) + "\n")

    def link(rel: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (root / rel).exists():
            os.link(src / rel, root / rel)

    for ln in keep:
        for rel in ln.split(",")[4:6]:
            link(rel.lstrip("/"))
    for split, limit in (("train", VIEWS_PER_CLASS), ("val", None)):
        rows, seen = [], {}
        for ln in (src / f"{split}.txt").read_text().splitlines():
            path, cid = [p.strip() for p in ln.split(",")[:2]]
            if cid in ids and (limit is None or seen.get(cid, 0) < limit):
                seen[cid] = seen.get(cid, 0) + 1
                rows.append(ln)
                link(path)
        (root / f"{split}.txt").write_text("\n".join(rows) + "\n")
    out = root.parent / "import"
    rep = import_grocery(root, out)
    assert rep.products == len(CLASSES)
    return out


@pytest.fixture(scope="module")
def trained(grocery_subset, embedder, tmp_path_factory):
    cfg = TrainConfig(epochs=25, patience=25, catalog_augs=2, tta_flip=False, batch_size=40)
    model = tmp_path_factory.mktemp("model")
    res = train_head(embedder, grocery_subset / "catalog", grocery_subset / "views", model, cfg)
    return res


def _val_recall(emb, data) -> dict:
    from core.data.query_sets import read_queries

    cat = load_catalog(data / "catalog")
    ref, _ = embed_cached(emb, [cat.path(r) for r in cat.rows])
    q, _ = read_queries(data / "queries-val.csv")
    qv, _ = embed_cached(emb, [p for p, _ in q])
    return recall_at(torch.from_numpy(qv), np.array([lab for _, lab in q], dtype=object),
                     torch.from_numpy(ref), np.array([r.product_id for r in cat.rows], dtype=object))


def test_training_improves_recall_on_held_out_shop_photos(trained, grocery_subset, embedder):
    before = _val_recall(embedder, grocery_subset)
    after = _val_recall(HeadEmbedder(embedder, trained.model_dir), grocery_subset)
    assert after["recall@1"] > before["recall@1"] + 0.05, (before, after)
    assert trained.best["recall@1"] >= trained.zero_shot["recall@1"]
    cfg = json.loads((trained.model_dir / "config.json").read_text())
    assert cfg["base"] == embedder.spec and cfg["head"]["in_dim"] == embedder.dim and cfg["data_fingerprint"]


def test_saved_head_gives_identical_embeddings_and_matches_cached_path(trained, grocery_subset, embedder):
    cat = load_catalog(grocery_subset / "catalog")
    paths = [cat.path(r) for r in cat.rows[:3]]
    imgs = [Image.open(p).convert("RGB") for p in paths]
    a = HeadEmbedder(embedder, trained.model_dir)
    b = HeadEmbedder(embedder, trained.model_dir)  # loaded again from disk
    np.testing.assert_array_equal(a.embed_images(imgs), b.embed_images(imgs))
    from core.embedding.batch import embed_sources

    live, _ = embed_sources(a, paths)
    cached, _ = embed_cached(a, paths)
    np.testing.assert_allclose(live, cached, atol=1e-5)


def test_weights_are_tensors_only_and_load_with_weights_only(trained, embedder, tmp_path):
    from safetensors.torch import load_file

    state = load_file(trained.model_dir / "model.safetensors")
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    alt = tmp_path / "pt"
    alt.mkdir()
    (alt / "config.json").write_text((trained.model_dir / "config.json").read_text())
    torch.save(state, alt / "model.pt")
    img = [Image.new("RGB", (64, 64), "orange")]
    np.testing.assert_allclose(HeadEmbedder(embedder, alt).embed_images(img),
                               HeadEmbedder(embedder, trained.model_dir).embed_images(img), atol=1e-6)


@pytest.mark.parametrize("loss", ["triplet", "proxy-anchor"])
def test_other_losses_train(loss, grocery_subset, embedder, tmp_path):
    cfg = TrainConfig(loss=loss, epochs=3, catalog_augs=2, tta_flip=False, batch_size=40)
    res = train_head(embedder, grocery_subset / "catalog", grocery_subset / "views", tmp_path / "m", cfg)
    assert len(res.history) >= 1 and np.isfinite(res.history[0]["loss"])
    assert (tmp_path / "m" / "model.safetensors").is_file()


def _tiny_head(tmp_path, base, seed=0):
    """A randomly initialised head saved like train_head does (cheap: no training)."""
    return write_head(tmp_path, base.spec, base.dim, seed=seed, tta_flip=True)


def test_head_spec_works_through_the_factory_and_retraining_makes_the_index_stale(tmp_path, tiny_clip):
    model = _tiny_head(tmp_path / "m", tiny_clip) if (tmp_path / "m").mkdir() is None else None
    spec = f"{tiny_clip.spec}+head:{model}"
    emb = load_embedder(spec)
    assert emb.spec == spec and emb.dim == 16
    cat_dir = tmp_path / "cat"
    cat_dir.mkdir()
    for c in ("red", "green", "blue"):
        Image.new("RGB", (40, 40), c).save(cat_dir / f"{c}.png")
    (cat_dir / "catalog.csv").write_text("image,product_id\nred.png,R\ngreen.png,G\nblue.png,B\n")
    from core.index.workspace import ensure_index

    ensure_index(cat_dir, emb)
    assert index_state(load_catalog(cat_dir), spec)[0] == "ok"
    _tiny_head(model, tiny_clip, seed=1)  # retrained in place
    emb2 = load_embedder(spec)
    idx = ensure_index(cat_dir, emb2)  # rebuilt, not reused with stale vectors
    assert idx.manifest["embedder"]["weights"] == emb2.weights_digest != emb.weights_digest


def test_head_refuses_a_mismatched_base_or_missing_files(tmp_path, tiny_clip):
    with pytest.raises(ValueError, match="not a trained head"):
        HeadEmbedder(tiny_clip, tmp_path)
    (tmp_path / "m").mkdir()
    _tiny_head(tmp_path / "m", tiny_clip)
    with pytest.raises(ValueError, match="trained on"):
        HeadEmbedder(PixelEmbedder(), tmp_path / "m")


def test_feature_cache_is_keyed_by_file_content(tmp_path):
    emb = PixelEmbedder()
    p = tmp_path / "a.png"
    Image.new("RGB", (20, 20), "red").save(p)
    v1, _ = cached_features(emb, [p])
    Image.new("RGB", (20, 20), "blue").save(p)
    v2, _ = cached_features(emb, [p])
    assert not np.allclose(v1, v2)
    np.testing.assert_allclose(v2, emb.embed_images([Image.open(p).convert("RGB")]), atol=1e-6)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    _, errors = cached_features(emb, [p, bad])
    assert list(errors) == [1]


def test_cached_views_are_the_backbone_on_mirrored_and_augmented_inputs(tmp_path, monkeypatch):
    """flip = the input tensor mirrored, aug<k> = the seeded augmentation of a JPEG decoded at twice the input
    size; the second call reads them from the cache; a part is saved every SAVE_EVERY images."""
    from core.data.catalog import file_digest
    from core.data.images import open_image
    from core.metric import features
    from core.metric.features import augment

    monkeypatch.setattr(features, "SAVE_EVERY", 2)  # several parts: errors and rows keep their places
    emb = PixelEmbedder()
    rng = np.random.default_rng(0)
    paths = []
    for n in range(5):
        p = tmp_path / f"{n}.jpg"
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), np.uint8)).save(p)
        paths.append(p)
    (tmp_path / "bad.jpg").write_bytes(b"no")
    paths.insert(3, tmp_path / "bad.jpg")
    ok = [p for p in paths if p.name != "bad.jpg"]
    direct = {"orig": [emb.preprocess(open_image(p, draft_size=8)) for p in ok],
              "flip": [emb.preprocess(open_image(p, draft_size=8)).flip(-1) for p in ok],
              "aug1": [emb.preprocess(augment(open_image(p, draft_size=16), "aug1", file_digest(p))) for p in ok]}
    first = {}
    for view, tensors in direct.items():
        first[view] = got = cached_features(emb, paths, view, batch_size=1)[0]
        assert list(cached_features(emb, paths, view)[1]) == [3] and not got[3].any()
        np.testing.assert_allclose(np.delete(got, 3, 0), emb.embed_tensors(torch.stack(tensors)), atol=1e-6)
    monkeypatch.setattr(features, "embed_sources", lambda *a, **k: pytest.fail("not read from the cache"))
    for view in direct:
        got, errors = cached_features(emb, ok, view)
        assert not errors and np.array_equal(got, np.delete(first[view], 3, 0))
    with pytest.raises(ValueError, match="unknown view"):
        cached_features(emb, paths, "sideways")


def test_index_from_cached_vectors_equals_build(tmp_path):
    emb = PixelEmbedder()
    for c in ("red", "green"):
        Image.new("RGB", (30, 30), c).save(tmp_path / f"{c}.png")
    (tmp_path / "catalog.csv").write_text("image,product_id\nred.png,R\ngreen.png,G\n")
    cat = load_catalog(tmp_path)
    built, _ = ProductIndex.build(cat, emb, tmp_path / "i1")
    vecs, _ = embed_cached(emb, [cat.path(r) for r in cat.rows])
    fast = ProductIndex.from_vectors(cat, emb, vecs, tmp_path / "i2")
    np.testing.assert_allclose(np.asarray(built.vectors), np.asarray(fast.vectors), atol=1e-6)
    assert built.items == fast.items and built.manifest["embedder"] == fast.manifest["embedder"]


def test_training_on_images_that_cannot_be_read_is_a_clear_error(tmp_path):
    """Every image failing to decode ends in one clear message, not an error from deep in the sampler."""
    cat_dir = tmp_path / "cat"
    cat_dir.mkdir()
    rows = ["image,product_id"]
    for n in range(4):  # a JPEG cut short: the header reads, the pixels do not
        Image.effect_noise((64, 64), 40 + n).convert("RGB").save(cat_dir / f"p{n}.jpg")
        (cat_dir / f"p{n}.jpg").write_bytes((cat_dir / f"p{n}.jpg").read_bytes()[:1000])
        rows.append(f"p{n}.jpg,P{n}")
    (cat_dir / "catalog.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="4 of 4 images could not be read"):
        train_head(PixelEmbedder(), cat_dir, None, tmp_path / "model", TrainConfig(epochs=1))


def test_early_stopping_reads_a_smoothed_held_out_curve():
    """One lucky epoch early on (a few held-out photos) must not stop training while the head still improves."""
    from core.metric.stopping import EarlyStopping

    curve = [0.86, 0.87, 0.93, 0.88, 0.89, 0.90, 0.90, 0.91, 0.92, 0.92, 0.93, 0.92, 0.91, 0.90, 0.90, 0.89]

    def run(smooth):
        stopper, kept = EarlyStopping(patience=4, smooth=smooth), None
        for epoch, r1 in enumerate(curve, 1):
            improved, stop = stopper.update(r1, r1)
            kept = epoch if improved else kept
            if stop:
                return kept, epoch
        return kept, len(curve)

    assert run(1) == (3, 7)  # each epoch's own score: the spike at epoch 3 wins, training stops at 7
    assert run(3) == (12, 16)  # the mean of the last 3: the plateau at 10-12 wins (a tie keeps the later)
    assert EarlyStopping(2, 3).update(0.5, 0.5) == (True, False)


def test_a_catalog_smaller_than_a_batch_trains_without_views(tmp_path):
    """One picture per product and fewer pictures than a batch (the default 128): the m-per-class sampler's
    length is clamped to a batch instead of asserting (issue 25)."""
    cat_dir = tmp_path / "cat"
    cat_dir.mkdir()
    rows = ["image,product_id"]
    for n in range(12):
        Image.effect_noise((64, 64), 20 + 10 * n).convert("RGB").save(cat_dir / f"p{n}.jpg")
        rows.append(f"p{n}.jpg,P{n}")
    (cat_dir / "catalog.csv").write_text("\n".join(rows) + "\n")
    res = train_head(PixelEmbedder(), cat_dir, None, tmp_path / "model",
                     TrainConfig(epochs=2, catalog_augs=1, query_zooms="1"))
    assert len(res.history) == 2 and (tmp_path / "model" / "model.safetensors").is_file()


def test_a_views_csv_without_one_usable_photo_is_a_clear_error(tmp_path):
    """Labelled photos that all fail to resolve (here: absolute paths, refused) are one line, not a silent
    catalog-only training."""
    cat_dir = tmp_path / "cat"
    cat_dir.mkdir()
    rows = ["image,product_id"]
    for n in range(3):
        Image.effect_noise((32, 32), 20 + 10 * n).convert("RGB").save(cat_dir / f"p{n}.jpg")
        rows.append(f"p{n}.jpg,P{n}")
    (cat_dir / "catalog.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "views.csv").write_text(f"image,product_id\n{cat_dir / 'p0.jpg'},P0\n")
    with pytest.raises(ValueError, match="no usable labelled photo"):
        train_head(PixelEmbedder(), cat_dir, tmp_path / "views.csv", tmp_path / "model", TrainConfig(epochs=1))


def test_one_list_of_loss_names():
    """``core.config.defaults.LOSSES`` (what the CLI offers) and ``make_loss`` (what builds them) name the same."""
    from core.config.defaults import LOSSES
    from core.metric.losses import make_loss

    for name in LOSSES:
        assert make_loss(name, num_classes=3, dim=8) is not None
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("not-a-loss", 3, 8)
