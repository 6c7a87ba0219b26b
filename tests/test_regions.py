"""Several products in one photo: generated scenes, letterboxed crops, boxes from the backbone maps, one search
per box, the CLI (``search --regions``, ``evaluate-regions``, ``scenes``)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.data.scenes import BOXES_CSV, read_scenes, write_scenes
from core.embedding.batch import embed_sources
from core.embedding.decode import Crop, QueryError, letterbox
from core.embedding.query import embed_queries, embed_query
from core.evaluation.regions_eval import evaluate_regions, iou, match
from core.search.engine import Searcher, SearchOptions
from core.search.region_head import productness_head
from core.search.regions import RegionParams, RegionSearcher, boxes_from_maps, draw_regions, region_at
from tests.conftest import ROOT, SAMPLE

SEED = 5  # neither the dev (1) nor the test (2) set, nor the head's training scenes (1000)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(SAMPLE, tmp_path_factory.mktemp("scenes") / "set", seed=SEED, n=6)


@pytest.fixture(scope="module")
def region_searcher(sample_index, embedder):
    return RegionSearcher(Searcher(sample_index, embedder))


def run(*args, check: bool = True):
    p = subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0 or not check, p.stderr
    return p


# ---------------------------------------------------------------- crops and letterboxing
def test_crop_from_box_round_trips_and_clips():
    assert Crop.from_box((80, 60, 400, 300), (800, 600)).box((800, 600)) == (80, 60, 400, 300)
    assert Crop.from_box((-20, -5, 900, 700), (800, 600)).is_full
    with pytest.raises(QueryError):
        Crop.from_box((300, 10, 300, 90), (800, 600))


def test_letterbox_pads_square_with_the_border_colour():
    img = Image.new("RGB", (90, 30), (200, 10, 10))
    img.paste((0, 0, 255), (30, 5, 60, 25))
    out = letterbox(img)
    assert out.size == (90, 90) and out.getpixel((0, 0)) == (200, 10, 10) and out.getpixel((45, 45)) == (0, 0, 255)
    assert letterbox(out) is out  # already square


def test_letterboxed_crop_gives_the_same_vector_through_query_and_batch(embedder, scenes):
    sc = read_scenes(scenes)[0]
    box = max((o.box for o in sc.objects), key=lambda b: (b[2] - b[0]) / (b[3] - b[1]))
    c = Crop.from_box(box, Image.open(sc.image).size)
    q = embed_query(embedder, sc.image, crop=c, letterboxed=True)
    vecs, errors = embed_sources(embedder, [sc.image], crops=[c], letterboxed=True)
    assert not errors and q.letterboxed and q.crop == c
    np.testing.assert_allclose(q.vector, vecs[0], atol=1e-5)
    qs, _ = embed_queries(embedder, [Image.open(sc.image).convert("RGB")], crops=[c], letterboxed=True)
    np.testing.assert_allclose(qs[0].vector, q.vector, atol=1e-5)
    assert qs[0].image.width == qs[0].image.height  # the square canvas
    plain = embed_query(embedder, sc.image, crop=c)
    assert float(plain.vector @ q.vector) < 0.999  # the centre crop of a non-square box differs


# ---------------------------------------------------------------- scenes
def test_scenes_are_deterministic_with_pixel_true_boxes(scenes, tmp_path):
    again = write_scenes(SAMPLE, tmp_path / "again", seed=SEED, n=6)
    assert (again / BOXES_CSV).read_bytes() == (scenes / BOXES_CSV).read_bytes()
    assert all((again / "scenes" / p.name).read_bytes() == p.read_bytes() for p in (scenes / "scenes").iterdir())
    other = write_scenes(SAMPLE, tmp_path / "other", seed=SEED + 1, n=6)
    assert (other / BOXES_CSV).read_bytes() != (scenes / BOXES_CSV).read_bytes()
    sets = read_scenes(scenes)
    assert len(sets) == 6 and all(2 <= len(s.objects) <= 6 for s in sets)
    assert any(o.touching for s in sets for o in s.objects) and any(not o.touching for s in sets for o in s.objects)
    for s in sets:
        w, h = Image.open(s.image).size
        assert len({o.product_id for o in s.objects}) == len(s.objects)
        assert all(0 <= o.box[0] < o.box[2] <= w and 0 <= o.box[1] < o.box[3] <= h for o in s.objects)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a scene set"):
        write_scenes(SAMPLE, tmp_path / "keep", n=1)
    assert (tmp_path / "keep" / "notes.txt").is_file()


# ---------------------------------------------------------------- boxes from maps (no model)
def _blob(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    return np.clip(1 - d, 0, 1)


def test_touching_products_split_at_the_centre_dip_and_shallow_peaks_merge():
    shape = (30, 40)
    a, b = _blob(shape, 15, 10, 8, 7), _blob(shape, 15, 24, 8, 7)  # touching: their masks meet
    fg = np.clip((a > 0) * 1.0 + (b > 0) * 1.0, 0, 1)
    boxes = boxes_from_maps(fg, np.maximum(a, b), (800, 600))
    assert len(boxes) == 2
    lefts = sorted(b[0][0] for b in boxes)
    assert lefts[0] < 200 < lefts[1]
    one = _blob(shape, 15, 17, 8, 14)
    shallow = one + 0.03 * np.cos(np.arange(shape[1]) / 2.0)[None] * (one > 0)  # ripples, not two products
    assert len(boxes_from_maps((one > 0) * 1.0, shallow, (800, 600))) == 1
    tiny = _blob(shape, 5, 5, 1.2, 1.2)  # a price tag's few cells are dropped
    assert boxes_from_maps((tiny > 0) * 1.0, tiny, (800, 600), RegionParams(min_cells=8)) == []


@pytest.mark.parametrize(("src", "dst"), [((3, 19, 25), (38, 50)), ((1, 19, 25), (600, 800)),
                                         ((2, 7, 5), (13, 17)), ((1, 20, 20), (10, 7)), ((4, 1, 1), (5, 3))])
def test_upsample_is_torchs_bilinear_resize(src, dst):
    """The head's resampling runs in numpy (finding boxes with a cached model imports no torch), as torch's."""
    import torch

    from core.search.region_head import upsample

    m = np.random.default_rng(0).normal(size=src).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(m)[None], size=dst, mode="bilinear",
                                          align_corners=False)[0].numpy()
    got = upsample(m, dst)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_match_is_one_to_one_at_iou_half():
    truth = [(0, 0, 100, 100), (100, 0, 200, 100)]
    assert match(truth, [(0, 0, 210, 100)]) == [None, None]  # one merged box finds neither
    assert match(truth, [(105, 0, 200, 100), (0, 0, 90, 100)]) == [1, 0]
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_draw_regions_numbers_boxes_and_a_click_picks_the_smallest():
    img = Image.new("RGB", (1600, 1200), (255, 255, 255))
    boxes = [(100, 100, 900, 900), (200, 200, 400, 400)]
    prev = draw_regions(img, boxes, size=800, selected=1)
    assert prev.size == (800, 600)
    assert prev.getpixel((50, 300)) == (255, 48, 48)  # left edge of box 1, scaled by 0.5
    assert prev.getpixel((150, 100)) == (255, 200, 0)  # the selected box
    assert region_at(boxes, (250, 250)) == 1 and region_at(boxes, (800, 800)) == 0
    assert region_at(boxes, (1500, 50)) is None


# ---------------------------------------------------------------- the model
@pytest.mark.slow
def test_proposals_find_the_pasted_products(region_searcher, scenes):
    ev = evaluate_regions(region_searcher, scenes, k=5)
    m = ev.metrics
    assert m["photos"] == 6 and m["products"] == len(ev.products) >= 12
    assert m["box_recall@0.5"] >= 0.8 and m["mean_iou_found"] >= 0.7  # dev set: 0.97 / 0.83 (docs/regions.md)
    assert m["box_recall_touching"] >= 0.7
    assert m["top1_per_found_box"] >= 0.7 and m["top1_per_found_box"] <= m["top5_per_found_box"]
    assert m["boxes_per_photo"] <= 8
    oracle = evaluate_regions(region_searcher, scenes, k=5, oracle=True).metrics
    assert oracle["box_recall@0.5"] == 1.0 and oracle["mean_iou"] == pytest.approx(1.0)


@pytest.mark.slow
def test_region_search_returns_each_box_with_its_products(region_searcher, scenes):
    sc = read_scenes(scenes)[0]
    res = region_searcher.search(sc.image, SearchOptions.make(k=3))
    assert res.size == Image.open(sc.image).size and res.regions
    for r in res.regions:
        assert 0 <= r.box[0] < r.box[2] <= res.size[0] and 0 <= r.box[1] < r.box[3] <= res.size[1]
        assert [h.rank for h in r.hits] == [1, 2, 3] and 0 < r.score <= 1.5
        assert r.query.letterboxed and r.crop(res.size) == r.query.crop
    assert {"boxes", "embed", "search", "total"} <= set(res.seconds)
    head = productness_head(region_searcher.searcher.index, region_searcher.backbone)  # from the cache
    np.testing.assert_array_equal(head.wf, region_searcher.head.wf)


@pytest.mark.slow
def test_cli_search_regions_and_evaluate_regions(region_searcher, sample_index, scenes, tmp_path):
    img = read_scenes(scenes)[1].image
    out = json.loads(run("search", "--index", sample_index.root, img, "--regions", "--k", "2", "--json").stdout)
    regs = out[str(img)]["regions"]
    assert regs and out[str(img)]["size"] == [800, 600]
    assert all(len(r["box"]) == 4 and [h["rank"] for h in r["hits"]] == [1, 2] for r in regs)
    text = run("search", "--index", sample_index.root, img, "--regions", "--k", "1").stdout
    assert "product(s) found" in text and "[1] box" in text

    small = run("scenes", "--out", tmp_path / "two", "--n", "2", "--seed", SEED).stdout
    assert "wrote" in small
    with open(tmp_path / "two" / BOXES_CSV, newline="") as f:
        assert {r["image"] for r in csv.DictReader(f)} == {"scenes/s000.jpg", "scenes/s001.jpg"}
    m = json.loads(run("evaluate-regions", "--index", sample_index.root, "--scenes", tmp_path / "two",
                       "--json").stdout)
    assert m["photos"] == 2 and m["products"] >= 4
    for key in ("box_recall@0.5", "mean_iou", "top1_per_found_box", "top5_per_found_box", "box_precision"):
        assert 0 <= m[key] <= 1
    assert m["seconds_per_photo"] > 0 and m["boxes_per_photo"] >= 1

    # real photos have no boxes: labelled photos (a queries CSV) say whether some box finds the product
    with open(tmp_path / "two" / BOXES_CSV, newline="") as f:
        first = {r["image"]: r["product_id"] for r in reversed(list(csv.DictReader(f)))}
    (tmp_path / "two" / "photos.csv").write_text("image,product_id\n" + "".join(f"{i},{p}\n" for i, p in first.items()))
    m = json.loads(run("evaluate-regions", "--index", sample_index.root, "--photos", tmp_path / "two" / "photos.csv",
                       "--json").stdout)
    assert m["photos"] == 2 and m["boxes_per_photo"] >= 1 and m["no_box"] == 0
    assert m["first_box_top1"] <= m["any_box_top1"] <= m["any_box_top5"] <= 1 and 0 <= m["whole_photo_top1"] <= 1
    bad = run("evaluate-regions", "--index", sample_index.root, "--photos", tmp_path / "two" / "photos.csv",
              "--oracle", check=False)
    assert bad.returncode != 0 and "--oracle needs --scenes" in bad.stderr and "Traceback" not in bad.stderr
