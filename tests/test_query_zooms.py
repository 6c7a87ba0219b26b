"""Query zooms (a whole-photo query embedded as the mean of centre zooms) and the held-out splits that choose
them: one query path for a photo and a batch, crops and boxes untouched, heads that carry their zooms."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from core.embedding.base import normalize
from core.embedding.decode import Crop, QueryError, decode, zoom
from core.embedding.head import HeadEmbedder
from core.embedding.query import embed_queries, embed_query
from core.metric.splits import appearance_holdout, listed_holdout
from core.metric.train import ZOOM_CANDIDATES, ZOOM_MARGIN, choose_zooms, zoom_candidates
from tests.helpers import PixelEmbedder, write_head


def _photo(path, seed: int) -> Image.Image:
    """A photo whose middle differs from its border, so zooms change the vector."""
    rng = np.random.default_rng(seed)
    img = np.zeros((120, 160, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    img[30:90, 40:120] = rng.integers(0, 255, 3)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    return [_photo(tmp_path / f"p{i}.png", i) for i in range(3)]


def test_zoom_is_a_centre_crop():
    assert zoom(1.0).is_full
    c = zoom(0.5)
    assert (c.left, c.top, c.right, c.bottom) == (0.25, 0.25, 0.75, 0.75)
    with pytest.raises(QueryError):
        zoom(0)


def test_a_whole_photo_query_is_the_mean_of_its_zooms_the_same_by_photo_batch_and_upload(photos):
    emb = PixelEmbedder()
    emb.query_zooms = (1.0, 0.5)
    want = normalize(sum(emb.embed_images([decode(photos[0], emb.image_size, zoom(z))])[0] for z in (1.0, 0.5)))
    one = embed_query(emb, photos[0])
    np.testing.assert_allclose(one.vector, want, atol=1e-6)
    batch, errors = embed_queries(emb, photos)
    assert not errors
    for p, q in zip(photos, batch):
        np.testing.assert_allclose(q.vector, embed_query(emb, p).vector, atol=1e-6)
    upload = io.BytesIO(photos[0].read_bytes())  # a file object is read once, then decoded per zoom
    np.testing.assert_allclose(embed_query(emb, upload).vector, want, atol=1e-6)
    assert one.image.size == decode(photos[0], emb.image_size).size  # the kept copy: the whole photo (filters)
    plain = embed_query(PixelEmbedder(), photos[0]).vector
    assert float(plain @ one.vector) < 0.999  # the zooms do change it


def test_crops_boxes_and_unzoomed_embedders_are_embedded_as_they_are(photos):
    zoomed, plain = PixelEmbedder(), PixelEmbedder()
    zoomed.query_zooms = (0.8, 0.5)
    c = Crop(0.1, 0.1, 0.7, 0.9)
    np.testing.assert_array_equal(embed_query(zoomed, photos[0], crop=c).vector,
                                  embed_query(plain, photos[0], crop=c).vector)
    np.testing.assert_array_equal(embed_query(zoomed, photos[0], letterboxed=True).vector,
                                  embed_query(plain, photos[0], letterboxed=True).vector)
    (q,), _ = embed_queries(zoomed, photos[:1], crops=[c], letterboxed=True)
    np.testing.assert_allclose(q.vector, embed_query(plain, photos[0], crop=c, letterboxed=True).vector, atol=1e-6)
    assert embed_query(plain, photos[0]).vector.shape == (plain.dim,)


def test_an_unreadable_photo_is_reported_and_the_others_kept(photos, tmp_path):
    emb = PixelEmbedder()
    emb.query_zooms = (1.0, 0.65)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    out, errors = embed_queries(emb, [photos[0], bad, photos[1]])
    assert set(errors) == {1} and out[1] is None
    np.testing.assert_allclose(out[2].vector, embed_query(emb, photos[1]).vector, atol=1e-6)


def test_every_zoom_pass_reports_progress_up_to_the_true_count(photos, tmp_path):
    emb = PixelEmbedder()
    emb.query_zooms = (1.0, 0.5, 0.8)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    seen: list[tuple[int, int]] = []
    _, errors = embed_queries(emb, [*photos, bad], progress=lambda done, total: seen.append((done, total)))
    assert set(errors) == {3}
    whole = 4 + 2 * 3  # every photo once, then the 3 readable ones at zooms 0.5 and 0.8
    assert len(seen) == 3 and seen[-1] == (whole, whole)  # one report per pass (one batch each here)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and all(d <= t for d, t in seen)


def test_a_head_carries_its_zooms_and_refuses_bad_ones(tmp_path):
    base = PixelEmbedder()
    h = HeadEmbedder(base, write_head(tmp_path / "a", base.spec, base.dim, query_zooms=[1, 0.8, 0.65]))
    assert h.query_zooms == (1.0, 0.8, 0.65) and h.info()["query_zooms"] == [1.0, 0.8, 0.65]
    plain = HeadEmbedder(base, write_head(tmp_path / "b", base.spec, base.dim))
    assert plain.query_zooms == (1.0,) and "query_zooms" not in plain.info()  # older heads: unchanged
    for bad in ([], [0.0], [2], ["x"], 0.8, [1, 0.9, 0.8, 0.7, 0.6]):
        with pytest.raises(ValueError, match="query_zooms"):
            HeadEmbedder(base, write_head(tmp_path / "c", base.spec, base.dim, query_zooms=bad))


def test_zoom_values_are_parsed_with_clear_errors():
    assert zoom_candidates("auto") == ZOOM_CANDIDATES and zoom_candidates("1") == ((1.0,),)
    assert zoom_candidates("0.8,0.65") == ((0.8, 0.65),)
    for bad in ("", "x", "0", "1.5", "0.9,0.8,0.7,0.6,0.5"):
        with pytest.raises(ValueError, match="--query-zooms"):
            zoom_candidates(bad)


def test_choose_zooms_needs_a_clear_gain_over_the_photo_as_it_is():
    lab = np.array(["a", "b"], dtype=object)
    ref = torch.eye(2)
    right, wrong = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])

    def views(good: set[float]):
        return lambda z: right if z in good else wrong

    # the photo as it is ranks both right: kept, even where a zoom set ties
    assert choose_zooms(ZOOM_CANDIDATES, views({1.0, 0.8, 0.65}), lab, ref, lab)[0] == (1.0,)
    # only the zoomed views rank right: the zoom set wins by more than the margin
    best, scores = choose_zooms(ZOOM_CANDIDATES, views({0.65, 0.5}), lab, ref, lab)
    assert best == (0.8, 0.65, 0.5) and scores == {"1": 0.0, "1,0.8,0.65": 0.0, "0.8,0.65,0.5": 1.0}
    assert ZOOM_MARGIN > 0 and choose_zooms(((0.8,),), views(set()), lab, ref, lab)[0] == (0.8,)


@dataclass
class S:
    label: str
    is_catalog: bool


def test_appearance_holdout_keeps_look_alike_photos_on_one_side():
    """Per product, the photos of the session least like its catalog image are held out together."""
    rng = np.random.default_rng(0)
    samples, vecs, far = [], [], set()
    for p in range(4):
        centre = rng.normal(size=16)
        samples.append(S(f"P{p}", True))
        vecs.append(centre)
        other = rng.normal(size=16)  # another store visit: a different look
        for j in range(20):
            samples.append(S(f"P{p}", False))
            session_far = j % 10 == 9  # 2 of 20 photos, listed apart from each other
            vecs.append((other if session_far else centre) + 0.05 * rng.normal(size=16))
            if session_far:
                far.add(len(samples) - 1)
    held = appearance_holdout(samples, np.array(vecs), 0.1)
    assert held == far
    assert not any(samples[i].is_catalog for i in held)
    listed = listed_holdout(samples, 0.1)
    assert len(listed) == 8 and listed != far  # the last listed: the near-copies of training photos


def _tiny_training_set(root):
    """4 products: a catalog image each and 6 labelled photos (two looks: a plain one, a framed one)."""
    (root / "cat").mkdir()
    rows, views = ["image,product_id"], ["image,product_id"]
    rng = np.random.default_rng(1)
    for p in range(4):
        colour = rng.integers(0, 255, 3)
        Image.new("RGB", (64, 48), tuple(int(c) for c in colour)).save(root / "cat" / f"p{p}.png")
        rows.append(f"p{p}.png,P{p}")
        for j in range(6):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:] = rng.integers(0, 255, 3) if j >= 4 else colour  # the last two: product amid clutter
            img[12:36, 16:48] = colour + rng.integers(-10, 10, 3)
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / "cat" / f"v{p}_{j}.png")
            views.append(f"v{p}_{j}.png,P{p}")
    (root / "cat" / "catalog.csv").write_text("\n".join(rows) + "\n")
    (root / "views.csv").write_text("\n".join(f"cat/{r}" if i else r for i, r in enumerate(views)) + "\n")
    return root / "cat", root / "views.csv"


def test_train_metric_chooses_and_saves_query_zooms_and_names_each_stage(tmp_path):
    from core.metric.train import TrainConfig, train_head

    cat, views = _tiny_training_set(tmp_path)
    calls = []
    cfg = TrainConfig(epochs=3, patience=3, catalog_augs=1, view_augs=1, batch_size=16, holdout=0.35)
    res = train_head(PixelEmbedder(), cat, views, tmp_path / "m", cfg,
                     progress=lambda stage, i, n: calls.append((stage, i, n)))
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert tuple(saved["query_zooms"]) == res.query_zooms and res.query_zooms in ZOOM_CANDIDATES
    assert set(saved["query_zoom_scores"]) == {"1", "1,0.8,0.65", "0.8,0.65,0.5"}
    assert saved["query_zoom_split"] == "appearance" and saved["train"]["split"] == "listed"
    assert HeadEmbedder(PixelEmbedder(), tmp_path / "m").query_zooms == res.query_zooms
    # each stage says what it does with true counts: photos listed and features read first, then each run's
    # epochs, counting up to at most the configured epochs
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages[0] == "listing the labelled photos" and stages[1].startswith("reading features")
    assert stages[-1] == "training (run 2 of 2): epoch"
    assert "choosing the query zooms (run 1 of 2): epoch" in stages
    for stage in stages:
        counts = [(i, n) for s, i, n in calls if s == stage]
        assert [i for i, _ in counts] == sorted(i for i, _ in counts) and all(0 < i <= n for i, n in counts)
    assert all(n == cfg.epochs for s, _, n in calls if s.endswith("epoch"))

    off = train_head(PixelEmbedder(), cat, views, tmp_path / "m1", TrainConfig(**{**cfg.__dict__, "query_zooms": "1"}))
    saved = json.loads((tmp_path / "m1" / "config.json").read_text())
    assert off.query_zooms == (1.0,) and saved["query_zooms"] == [1.0] and saved["query_zoom_scores"] == {}
    with pytest.raises(ValueError, match="held-out split"):
        train_head(PixelEmbedder(), cat, views, tmp_path / "m2", TrainConfig(split="random"))
