"""Classifier vs neighbours as the argument tells it: trained on one labelled photo set, tested on another, and
the "classifier right, neighbour wrong" photos a trained head fixes counted (synthetic geometry, known answers);
the photo sets a catalog offers; the CLI verb as a user runs it; the page."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.embedding.base import Embedder
from core.explore.disagreements import compare, embedders_to_compare, first_with_cases
from core.explore.photo_sets import PhotoVectors, held_out_sets, training_sets
from core.index.product_index import ProductIndex
from tests.conftest import ROOT, SAMPLE
from tests.helpers import PixelEmbedder, write_head


class FixedEmbedder(Embedder):
    """An embedder whose photo vectors a test fixes (the ``vectors`` function of :func:`compare` supplies them)."""

    def __init__(self, spec: str, dim: int = 4):
        self.spec, self.dim, self.image_size = spec, dim, 8


def unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "product_id"])
        w.writerows(rows)
    return path


@pytest.fixture
def toy(tmp_path):
    """Products A and B. Catalog pictures (two each): A along e1, B along e2. Training photos: A's near e3,
    B's near e4, so the classifier learns "e3 side: A, e4 side: B". Held-out photos of A lean to e3 (the
    classifier says A) but sit closer to B's catalog picture than to A's (the nearest product is B): the
    argument's case. The trained head's vectors put photos a1, a2 next to A's picture, a3 next to B's; b1 is a
    plain photo of B."""
    shop = tmp_path / "shop"
    (shop / "photos").mkdir(parents=True)
    files = ["a_cat", "a_cat2", "b_cat", "b_cat2", *(f"ta{i}" for i in range(6)), *(f"tb{i}" for i in range(6)),
             "a1", "a2", "a3", "b1"]
    for name in files:
        (shop / "photos" / f"{name}.jpg").write_bytes(b"x")
    rng = np.random.default_rng(0)
    pre = {"ta": lambda: unit(*rng.uniform(0, 1, 2), 1, 0),  # e1, e2 vary and tell nothing: e3 vs e4 does
           "tb": lambda: unit(*rng.uniform(0, 1, 2), 0, 1)}
    pre_vec = {f"{k}{i}": f() for k, f in pre.items() for i in range(6)}
    pre_vec |= {"a1": unit(0, 0.6, 1, 0), "a2": unit(0, 0.5, 1, 0.1), "a3": unit(0, 0.7, 1, 0),
                "b1": unit(0, 1, 0, 1)}
    head_vec = {"a1": unit(1, 0.1, 0, 0), "a2": unit(1, 0.2, 0, 0), "a3": unit(0.1, 1, 0, 0), "b1": unit(0, 1, 0, 0)}
    pre_emb, head_emb = FixedEmbedder("toy-pretrained"), FixedEmbedder("toy+head:/x")
    items = [{"product_id": p, "image": f"photos/{p.lower()}_cat{v}.jpg"} for p in "AB" for v in ("", "2")]
    products = {"A": {"category": "fruit", "title": "Apple"}, "B": {"category": "fruit", "title": "Banana"}}
    pictures = np.stack([unit(1, 0, 0, 0), unit(1, -0.05, 0, 0), unit(0, 1, 0, 0), unit(-0.05, 1, 0, 0)])
    pre_idx = ProductIndex.from_arrays(tmp_path / "pre", pictures, items, products, pre_emb.info(), catalog_root=shop)
    head_idx = ProductIndex.from_arrays(tmp_path / "head", pictures, items, products, head_emb.info(),
                                        catalog_root=shop)
    calls: list[tuple[str, list[str]]] = []

    def vectors(embedder, paths, desc, progress):
        names = [Path(p).stem for p in paths]
        calls.append((embedder.spec, names))
        table = head_vec if embedder is head_emb else pre_vec
        ok = [n for n in names if n in table]
        return np.stack([table[n] for n in ok]), {i: "unreadable" for i, n in enumerate(names) if n not in table}

    train = write_csv(shop / "queries-train.csv",
                      [(f"photos/ta{i}.jpg", "A") for i in range(6)] + [(f"photos/tb{i}.jpg", "B") for i in range(6)])
    held = write_csv(shop / "queries-val.csv", [(f"photos/{n}.jpg", "A") for n in ("a1", "a2", "a3")]
                     + [("photos/b1.jpg", "B")])
    return {"shop": shop, "pre": (pre_idx, pre_emb), "trained": (head_idx, head_emb), "vectors": vectors,
            "train": train, "held": held, "calls": calls}


def test_trained_on_one_set_tested_on_another_and_fixed_cases_counted(toy):
    idx, emb = toy["pre"]
    rep = compare(idx, emb, toy["held"], "product_id", train=toy["train"], trained=toy["trained"],
                  vectors=toy["vectors"])
    assert rep.trained_on == "queries-train.csv" and rep.tested_on == "queries-val.csv" and rep.n_train == 12
    trained_on = {n for spec, names in toy["calls"] if spec == emb.spec for n in names if n.startswith("t")}
    assert len(trained_on) == 12  # the classifier saw the training photos ...
    assert [Path(c.image).stem for c in rep.cases] == ["a1", "a2", "a3", "b1"]  # ... and is tested on the others
    by = {Path(c.image).stem: c for c in rep.cases}
    assert all(by[n].clf_label == "A" and by[n].nn_label == "B" for n in ("a1", "a2", "a3"))
    assert by["b1"].kind == "both_right"
    assert rep.counts() == {"both_right": 1, "classifier_only": 3, "neighbour_only": 0, "both_wrong": 0}
    assert [Path(c.image).stem for c in rep.fixed()] == sorted(["a1", "a2"], key=lambda n: -by[n].clf_prob)
    assert by["a3"].trained_label == "B" and not by["a3"].fixed
    assert rep.accuracy_classifier == 1.0 and rep.accuracy_neighbour == 0.25 and rep.accuracy_trained == 0.75
    assert by["a1"].clf_image.endswith("a_cat.jpg")  # A's picture closest to the photo
    assert by["a1"].nn_image.endswith("b_cat.jpg") and by["a1"].trained_image.endswith("a_cat.jpg")
    d = rep.to_dict()
    assert d["fixed_by_trained_head"] == 2 and d["produced_by"]["trained"] == "toy+head:/x"
    assert d["produced_by"]["index"] == idx.fingerprint and json.dumps(d)


def test_training_progress_moves_and_ends(toy):
    idx, emb = toy["pre"]
    ticks = []
    rep = compare(idx, emb, toy["held"], "product_id", train=toy["train"], vectors=toy["vectors"],
                  progress=lambda i, n: ticks.append((i, n)))
    assert ticks[0] == (0, 500) and ticks[-1] == (500, 500) and ticks == sorted(ticks)
    assert rep.counts()["classifier_only"] == 3


def test_catalog_pictures_alone_give_another_classifier(toy):
    """Without training photos the classifier learns from the catalog's pictures, and then it agrees with the
    nearest product: no "classifier right, neighbour wrong" case, so the photos are what make the argument. One
    photo per class on average is too few to train on: refused in one line."""
    idx, emb = toy["pre"]
    with pytest.raises(ValueError, match="at least 2 values"):
        compare(idx, emb, toy["held"], "category", vectors=toy["vectors"])  # both products are fruit
    rep = compare(idx, emb, toy["held"], "product_id", vectors=toy["vectors"])
    assert rep.trained_on == "the catalog's own pictures" and rep.n_train == 4
    assert rep.counts()["classifier_only"] == 0 and rep.accuracy_trained is None and rep.fixed() == []
    one_each = write_csv(toy["shop"] / "one-each.csv", [("photos/ta0.jpg", "A"), ("photos/tb0.jpg", "B")])
    with pytest.raises(ValueError, match="2 or more photos of each"):
        compare(idx, emb, toy["held"], "product_id", train=one_each, vectors=toy["vectors"])


def test_a_photo_never_trains_and_tests(toy):
    idx, emb = toy["pre"]
    both = write_csv(toy["shop"] / "mixed.csv", [("photos/a1.jpg", "A"), ("photos/ta0.jpg", "A")])
    rep = compare(idx, emb, both, "product_id", train=toy["train"], vectors=toy["vectors"])
    assert [Path(c.image).stem for c in rep.cases] == ["a1"]
    assert any("ta0.jpg: also a training photo" in s for s in rep.skipped)
    only = write_csv(toy["shop"] / "only.csv", [("photos/ta0.jpg", "A")])
    with pytest.raises(ValueError, match="none of the queries could be used"):
        compare(idx, emb, only, "product_id", train=toy["train"], vectors=toy["vectors"])


def test_first_label_with_cases_is_the_default(toy):
    idx, emb = toy["pre"]
    tried = []

    def report(label):
        tried.append(label)
        return compare(idx, emb, toy["held"], label, train=toy["train"], vectors=toy["vectors"])

    assert first_with_cases(["category", "product_id", "title"], report).label == "product_id"
    assert tried == ["category", "product_id"]  # category fails (one value), product_id has cases: stop there
    with pytest.raises(ValueError):
        first_with_cases(["category"], report)


def test_sets_found_beside_the_catalog(toy, tmp_path):
    shop = toy["shop"]
    (shop / "catalog").mkdir()
    write_csv(shop / "queries-examples.csv", [("photos/a1.jpg", "A")])
    write_csv(shop / "queries-test.csv", [("photos/a2.jpg", "A")])
    assert [s.name for s in training_sets(shop / "catalog")] == ["queries-train.csv"]
    assert [s.name for s in held_out_sets(shop / "catalog")] == ["queries-examples.csv", "queries-val.csv",
                                                                 "queries-test.csv"]
    assert embedders_to_compare("e+head:/m", shop / "catalog") == ("e", "e+head:/m")
    assert embedders_to_compare("efficientnet-lite0", shop / "catalog") == ("efficientnet-lite0", None)
    write_head(shop / "head", "efficientnet-lite0:ms", 1280)  # the catalog ships a head: the switch's two sides
    shipped = f"efficientnet-lite0:ms+head:{(shop / 'head').resolve()}"
    assert embedders_to_compare("efficientnet-lite0", shop / "catalog") == ("efficientnet-lite0", shipped)
    assert embedders_to_compare(shipped, shop / "catalog") == ("efficientnet-lite0", shipped)
    assert embedders_to_compare("efficientnet-lite2", shop / "catalog") == ("efficientnet-lite2", shipped)


def test_photo_vectors_embed_each_photo_once(tmp_path):
    emb = PixelEmbedder()
    src = sorted((SAMPLE / "queries").glob("*.jpg"))[:3]
    paths = [Path(shutil.copy(p, tmp_path / p.name)) for p in src]
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    memo = PhotoVectors()
    ticks = []
    first, err = memo(emb, [*paths, tmp_path / "bad.jpg"], "photos", lambda i, n: ticks.append((i, n)))
    assert first.shape == (3, emb.dim) and list(err) == [3] and ticks and len(memo) == 4
    ticks.clear()
    again, err2 = memo(emb, [paths[2], paths[0]], "photos", lambda i, n: ticks.append((i, n)))
    assert not ticks and not err2  # nothing embedded again
    np.testing.assert_array_equal(again, first[[2, 0]])
    Image.new("RGB", (20, 20), "red").save(paths[0])  # a changed file is embedded again
    changed, _ = memo(emb, [paths[0]], "photos", lambda i, n: ticks.append((i, n)))
    assert ticks and not np.allclose(changed[0], first[0])


# ------------------------------------------------------------------ a tiny real shop: CLI and page
@pytest.fixture(scope="module")
def tiny_shop(tmp_path_factory):
    """Six sample products, one catalog picture each; their second picture is a training photo
    (``queries-train.csv``), their shopper photo held out (``queries-val.csv``), and a (random) head shipped
    beside the catalog."""
    shop = tmp_path_factory.mktemp("tiny-shop")
    rows = list(csv.DictReader(open(SAMPLE / "catalog.csv")))
    pids = sorted({r["product_id"] for r in rows})[:6]
    (shop / "catalog" / "images").mkdir(parents=True)
    (shop / "photos-train").mkdir()
    (shop / "photos-val").mkdir()
    cat, train = [], []
    for r in rows:
        if r["product_id"] not in pids:
            continue
        name = Path(r["image"]).name
        if name.endswith("_b.jpg"):
            shutil.copy(SAMPLE / r["image"], shop / "photos-train" / name)
            train.append((f"photos-train/{name}", r["product_id"]))
        else:
            shutil.copy(SAMPLE / r["image"], shop / "catalog" / "images" / name)
            cat.append(r)
    with open(shop / "catalog" / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(cat)
    write_csv(shop / "queries-train.csv", train)
    queries = csv.DictReader(open(SAMPLE / "queries.csv"))
    val = [(f"photos-val/{Path(q['image']).name}", q["product_id"]) for q in queries if q["product_id"] in pids]
    for rel, _ in val:
        shutil.copy(SAMPLE / "queries" / Path(rel).name, shop / rel)
    write_csv(shop / "queries-val.csv", val)
    write_head(shop / "head", "efficientnet-lite0", 1280)
    return shop


def test_cli_disagreements_with_the_defaults(tiny_shop, embedder, tmp_path):
    from core.data.catalog import load_catalog

    ProductIndex.build(load_catalog(tiny_shop / "catalog"), embedder, tmp_path / "idx")
    p = subprocess.run([sys.executable, "-m", "core", "disagreements", "--index", str(tmp_path / "idx"), "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["trained_on"] == "queries-train.csv" and d["tested_on"] == "queries-val.csv"
    n_val = len(list(csv.DictReader(open(tiny_shop / "queries-val.csv"))))
    assert d["n_train"] == 6 and d["n_queries"] == n_val > 0
    assert d["trained_spec"] == f"efficientnet-lite0+head:{(tiny_shop / 'head').resolve()}"
    assert 0 <= d["accuracy_trained_neighbour"] <= 1
    fixed = [c for c in d["cases"] if c["fixed"]]
    assert d["fixed_by_trained_head"] == len(fixed) <= d["counts"]["classifier_only"]
    p = subprocess.run([sys.executable, "-m", "core", "disagreements", "--index", str(tmp_path / "idx"),
                        "--label", "colr"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and p.stderr.startswith("error:") and len(p.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def sample_in_app(sample_index):
    """The app's cached index of the sample catalog is the session's (no second embedding pass)."""
    from core.index.workspace import index_dir_for

    d = index_dir_for(SAMPLE, sample_index.spec)
    if not (d / "CURRENT").exists():
        shutil.copytree(sample_index.root, d, dirs_exist_ok=True)
    return d


def test_page_leads_with_the_cases(sample_in_app, tmp_path):
    """The sample with a (random) trained head picked in the sidebar: the pretrained embedder is its base. The
    sample has no training photos, so the classifier learns from the catalog's pictures; the default label is
    the first where cases exist."""
    from streamlit.testing.v1 import AppTest

    head = write_head(tmp_path / "head", "efficientnet-lite0", 1280)
    at = AppTest.from_file(str(ROOT / "pages" / "3_Classifier_vs_neighbours.py"), default_timeout=900)
    at.session_state["vps_spec_custom"] = f"efficientnet-lite0+head:{head}"
    at.session_state["cvn_map_on"] = True  # the map, asked for
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.subheader[0].value == "Classifier right, neighbour wrong"  # the page leads with the cases
    assert at.selectbox(key="cvn_label").value == "product_id"  # the first label with cases
    text = " ".join(m.value for m in at.markdown)
    found = re.search(r"On \*\*(\d+)\*\* of (\d+) photos it never saw.*the trained head fixes (\d+) of (\d+)", text)
    assert found, text
    n, total, fixed, of = map(int, found.groups())
    assert 0 < n == of and total == 120 and 0 <= fixed <= n
    assert "the classifier names the right product" in text and "The classifier says" in text
    assert "(right); the closest catalog picture is" in text
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert sum(c.startswith("Shopper photo") for c in captions) >= min(n, 12)  # with pictures
    assert any(c.startswith("Closest with the trained head") for c in captions)
    assert [m.label for m in at.metric] == ["Classifier", "Closest catalog picture (pretrained)",
                                            "Closest catalog picture (trained head)"]
    assert "catalog's own pictures" in " ".join(c.value for c in at.caption)
    assert at.get("plotly_chart")
    at.selectbox(key="cvn_label").set_value("category").run()
    assert not at.exception and at.selectbox(key="cvn_label").value == "category"


@pytest.mark.slow
def test_the_demo_shows_the_argument_with_its_defaults(embedder):
    """On the real-photo demo, with the defaults the page and the CLI choose: the classifier trained on the shop
    photos beats the pretrained nearest catalog picture, and the shipped head's nearest picture closes most of the
    gap, fixing most of the "classifier right, neighbour wrong" photos."""
    from core.config.paths import DEMO_CATALOG
    from core.embedding import load_embedder
    from core.explore.disagreements import default_label_order
    from core.index.workspace import ensure_index

    pre, head_spec = embedders_to_compare(embedder.spec, DEMO_CATALOG)
    assert pre == embedder.spec and head_spec is not None
    head = load_embedder(head_spec)
    trained = (ensure_index(DEMO_CATALOG, head), head)
    idx = ensure_index(DEMO_CATALOG, embedder)
    train, held = training_sets(DEMO_CATALOG), held_out_sets(DEMO_CATALOG)
    assert [s.name for s in train] == ["queries-train.csv"] and held[0].name == "queries-examples.csv"
    memo = PhotoVectors()
    rep = first_with_cases(default_label_order(idx), lambda lab: compare(
        idx, embedder, held[0].path, lab, train=train[0].path, trained=trained, vectors=memo))
    assert rep.label == "product_id" and not rep.skipped
    gap = rep.accuracy_classifier - rep.accuracy_neighbour
    assert gap > 0.2, rep.to_dict()["counts"]
    assert rep.accuracy_trained - rep.accuracy_neighbour > 0.5 * gap
    assert len(rep.fixed()) > 0.5 * rep.counts()["classifier_only"]
