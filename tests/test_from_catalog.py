"""``train-metric --from-catalog``: a head trained on synthetic shop photos of the catalog's own pictures."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from core.data.shop_views import AUGMENTATIONS, shop_view
from tests.conftest import SAMPLE
from tests.test_cli import run

N_PRODUCTS = 6  # the sample catalog's first products: the test's catalog, small enough for 2 busy CPU cores


def _picture(seed: int) -> Image.Image:
    """A product on a white studio backdrop."""
    img = Image.new("RGB", (160, 200), (255, 255, 255))
    rng = np.random.default_rng(seed)
    img.paste(Image.fromarray(rng.integers(0, 200, (120, 80, 3), dtype=np.uint8)), (40, 40))
    return img


def test_a_shop_view_is_the_same_for_the_same_seed_and_each_effect_can_be_left_out():
    pic, others = _picture(1), [_picture(2), _picture(3)]
    a, b = shop_view(pic, "k:shop0", others), shop_view(pic, "k:shop0", others)
    assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(shop_view(pic, "k:shop1", others)))
    for aug in AUGMENTATIONS:  # every effect alone, and everything but it, makes a photo
        assert shop_view(pic, f"k:{aug}", others, [aug]).size[0] > 8
        assert shop_view(pic, f"k:no-{aug}", others, [a for a in AUGMENTATIONS if a != aug]).size[0] > 8
    plain = shop_view(pic, "k:none", others, [])  # no effect: the product alone on white
    assert np.asarray(plain)[0, 0].tolist() == [255, 255, 255]


def _catalog_of_pictures(root, n: int = 8):
    """``n`` products, one studio picture each, no labelled photo."""
    cat = root / "cat"
    cat.mkdir()
    rows = ["image,product_id"]
    for k in range(n):
        _picture(10 + k).save(cat / f"p{k}.png")
        rows.append(f"p{k}.png,P{k}")
    (cat / "catalog.csv").write_text("\n".join(rows) + "\n")
    return cat


def test_early_stopping_reads_held_out_synthetic_photos_and_an_identity_head_never_falls_below_the_base(tmp_path):
    import torch

    from core.embedding.head import HeadEmbedder
    from core.metric.train import TrainConfig, train_head
    from tests.helpers import PixelEmbedder

    cat = _catalog_of_pictures(tmp_path)
    calls = []
    cfg = TrainConfig(epochs=3, shop_views=2, shop_holdout=1, catalog_augs=0, head_init="identity", query_zooms="1",
                      batch_size=16)
    res = train_head(PixelEmbedder(), cat, None, tmp_path / "m", cfg, progress=lambda *c: calls.append(c))
    assert res.synthetic and res.n_heldout == 8  # one held-out synthetic photo per picture, no real photo
    assert {"reading features (shop0)", "reading features (shop2)"} <= {c[0] for c in calls}
    assert res.best["recall@1"] >= res.zero_shot["recall@1"]  # the base is the epoch to beat
    head = HeadEmbedder(PixelEmbedder(), tmp_path / "m")
    assert head.dim == PixelEmbedder().dim
    if res.best["epoch"] == 0:  # nothing beat the base: the saved head is the base itself
        x = torch.randn(3, head.dim)
        assert torch.allclose(head.head(x), x, atol=1e-6)


def _small_sample(root):
    """The sample catalog's first :data:`N_PRODUCTS` products and their shopper photos."""
    cat = root / "cat"
    shutil.copytree(SAMPLE, cat, ignore=shutil.ignore_patterns("*.jpg", "*.png"))
    rows = (SAMPLE / "catalog.csv").read_text().splitlines()
    keep = [r for r in rows[1:] if int(r.split(",")[1][1:]) < N_PRODUCTS]
    (cat / "catalog.csv").write_text("\n".join([rows[0], *keep]) + "\n")
    qrows = (SAMPLE / "queries.csv").read_text().splitlines()
    qkeep = [r for r in qrows[1:] if int(r.split(",")[1][1:]) < N_PRODUCTS]
    (cat / "queries.csv").write_text("\n".join([qrows[0], *qkeep]) + "\n")
    for r in keep + qkeep:
        shutil.copy(SAMPLE / r.split(",")[0], cat / r.split(",")[0])
    return cat


@pytest.mark.slow
def test_train_metric_from_catalog_then_index_search_evaluate(tmp_path):
    """Done when of issue 25: train from the catalog alone with the defaults a user gets, then index with the
    printed spec, search and evaluate."""
    cat = _small_sample(tmp_path)
    out = run("train-metric", "--catalog", cat, "--from-catalog", "--out", tmp_path / "m").stdout
    assert "held-out synthetic shop photos" in out
    # the head is recommended only if it beats the pretrained base on the catalog's labelled photos too
    assert f"labelled photos {cat / 'queries.csv'}" in out
    spec = re.search(r"embedder spec: (\S+)", out).group(1)
    assert spec == "efficientnet-lite0" or spec == f"efficientnet-lite0+head:{tmp_path / 'm'}"
    assert (spec == "efficientnet-lite0") == ("keep searching with efficientnet-lite0" in out)
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["train"]["shop_views"] > 0 and saved["n_holdout"] > 0
    run("index", "--catalog", cat, "--out", tmp_path / "idx", "--model", spec)
    q = cat / (cat / "queries.csv").read_text().splitlines()[1].split(",")[0]
    hits = json.loads(run("search", "--index", tmp_path / "idx", q, "--k", "3", "--json").stdout)[str(q)]["hits"]
    assert len(hits) == 3
    ev = json.loads(run("evaluate", "--index", tmp_path / "idx", "--queries", cat / "queries.csv", "--json").stdout)
    assert ev["n_queries"] == len((cat / "queries.csv").read_text().splitlines()) - 1
    assert ev["recall@10"] > 0.5
