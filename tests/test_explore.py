"""UMAP map cache, classifier-versus-neighbour report (checked against a direct computation), CLI and pages."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.data.catalog import Catalog, load_catalog
from core.data.query_sets import folder_queries, load_labelled_queries, write_folder_queries
from core.explore.disagreements import KINDS, compare, decision_regions, train_classifier
from core.explore.projection import UmapParams, project, projection_dir
from core.index.product_index import ProductIndex
from tests.conftest import SAMPLE, dataset
from tests.helpers import PixelEmbedder, subset


# ------------------------------------------------------------------ direct computation to check against
def check_against_direct(rep, index: ProductIndex, label: str) -> None:
    """Every case, both accuracies and the counts equal a plain numpy nearest neighbour + the head's softmax."""
    labels = index.labels(label)
    live = np.flatnonzero(index.alive)
    sims = rep.query_vectors @ np.asarray(index.vectors[live]).T
    nn_pid = [index.items[live[j]]["product_id"] for j in sims.argmax(1)]
    proba = rep.classifier.score_many(rep.query_vectors)
    clf = [rep.classifier.values[i] for i in proba.argmax(1)]
    truth = [c.label for c in rep.cases]
    assert [c.nn_product for c in rep.cases] == nn_pid
    assert [c.nn_label for c in rep.cases] == [labels[p] for p in nn_pid]
    assert [c.clf_label for c in rep.cases] == clf
    np.testing.assert_allclose([c.nn_distance for c in rep.cases], 1 - sims.max(1), atol=1e-4)
    np.testing.assert_allclose([c.clf_prob for c in rep.cases], proba.max(1), atol=1e-6)
    acc_clf = np.mean([a == b for a, b in zip(clf, truth)])
    acc_nn = np.mean([labels[p] == t for p, t in zip(nn_pid, truth)])
    assert rep.accuracy_classifier == pytest.approx(acc_clf)
    assert rep.accuracy_neighbour == pytest.approx(acc_nn)
    only_clf = sum(a == t and labels[p] != t for a, p, t in zip(clf, nn_pid, truth))
    only_nn = sum(a != t and labels[p] == t for a, p, t in zip(clf, nn_pid, truth))
    assert rep.counts()["classifier_only"] == only_clf
    assert rep.counts()["neighbour_only"] == only_nn
    assert sum(rep.counts().values()) == len(rep.cases)
    disagree = sum(a != labels[p] for a, p in zip(clf, nn_pid))
    assert sum(rep.disagreement_confusion().values()) == disagree
    d = rep.to_dict()
    assert {c["kind"] for c in d["cases"]} <= {"classifier_only", "neighbour_only"}
    assert len(d["cases"]) == only_clf + only_nn
    json.dumps(d)


# ------------------------------------------------------------------ sample catalog
@pytest.fixture(scope="module")
def sample_report(sample_index, embedder):
    return compare(sample_index, embedder, SAMPLE / "queries.csv", "product_id")


def test_sample_report_matches_direct_computation(sample_report, sample_index):
    rows = list(csv.DictReader(open(SAMPLE / "queries.csv")))
    assert [c.label for c in sample_report.cases] == [r["product_id"] for r in rows]
    check_against_direct(sample_report, sample_index, "product_id")
    assert sample_report.classifier.report["n"] == int(sample_index.alive.sum())


def test_sample_has_both_kinds_of_case(sample_report):
    counts = sample_report.counts()
    assert counts["classifier_only"] > 0, counts  # the "D versus C" case: classified right, nearest is another
    assert counts["neighbour_only"] > 0, counts
    for c in sample_report.of_kind("classifier_only"):
        assert c.clf_label == c.label != c.nn_label


def test_category_label_from_product_ids_with_root(tmp_path, sample_index, embedder):
    """A CSV without the label column takes it from each product; images resolve under ``root``."""
    rows = list(csv.DictReader(open(SAMPLE / "queries.csv")))[:24]
    q = tmp_path / "q.csv"
    with open(q, "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "product_id"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    rep = compare(sample_index, embedder, q, "category", root=SAMPLE)
    assert [c.label for c in rep.cases] == [sample_index.products[r["product_id"]]["category"] for r in rows]
    check_against_direct(rep, sample_index, "category")
    assert set(rep.classifier.values) == {f["category"] for f in sample_index.products.values()}


def test_bad_label_and_escaping_paths_are_refused(tmp_path, sample_index, embedder):
    with pytest.raises(ValueError, match="no column 'colr'"):
        compare(sample_index, embedder, SAMPLE / "queries.csv", "colr")
    q = tmp_path / "q.csv"
    q.write_text("image,category\n../outside.jpg,bag\n/etc/passwd,bag\n")
    rows, skipped = load_labelled_queries(q, "category", {}, root=SAMPLE)
    assert rows == [] and len(skipped) == 2
    with pytest.raises(ValueError, match="none of the queries could be used"):
        compare(sample_index, embedder, q, "category", root=SAMPLE)
    with pytest.raises(ValueError, match="root folder not found"):
        load_labelled_queries(q, "category", {}, root=tmp_path / "nope")


def test_folder_queries_csv_round_trip(tmp_path):
    tree = tmp_path / "tree"
    for cat in ("hat", "shoe"):
        (tree / cat).mkdir(parents=True)
        shutil.copy(next((SAMPLE / "queries").glob("*.jpg")), tree / cat / f"{cat}1.jpg")
    (tree / "notes.txt").write_text("x")
    out = write_folder_queries(tree, tmp_path / "elsewhere" / "q.csv")
    rows, skipped = load_labelled_queries(out, "category", {}, root=tree)
    assert not skipped
    assert [(p.resolve(), c) for p, c in rows] == [(p.resolve(), c) for p, c in folder_queries(tree)]
    assert [c for _, c in rows] == ["hat", "shoe"]
    with pytest.raises(ValueError, match="category"):
        load_labelled_queries(tree, "product_id", {})


# ------------------------------------------------------------------ UMAP cache
@pytest.fixture()
def pixel_index(tmp_path, sample_catalog):
    """A quick index (8x8 colour thumbnails) of 60 sample products, written in a fresh folder."""
    keep = sorted(sample_catalog.products)[:60]
    idx, _ = ProductIndex.build(subset(sample_catalog, set(keep)), PixelEmbedder(), tmp_path / "px")
    return idx


def test_umap_cached_reused_and_invalidated(pixel_index):
    params = UmapParams(n_neighbors=8, min_dist=0.2)
    ticks = []
    first = project(pixel_index, params, progress=lambda i, n: ticks.append((i, n)))
    assert not first.reused and ticks[-1][0] == ticks[-1][1]
    assert first.coords.shape == (int(pixel_index.alive.sum()), 2)
    m = first.manifest
    assert m["index_fingerprint"] == pixel_index.fingerprint and m["embedder"] == "test-pixels"
    assert m["params"]["n_neighbors"] == 8 and m["dim"] == 192 and m["n_fit"] == m["n_points"]

    again = project(pixel_index, params)
    assert again.reused
    np.testing.assert_array_equal(again.coords, first.coords)
    placed = again.transform(np.asarray(pixel_index.vectors[:3]))  # reducer loaded back from disk
    assert placed.shape == (3, 2) and np.isfinite(placed).all()

    other = project(pixel_index, UmapParams(n_neighbors=5, min_dist=0.2))
    assert not other.reused and other.path.parent != first.path.parent

    changed = pixel_index.remove([pixel_index.live_products()[0]])
    after = project(changed, params)
    assert not after.reused and after.manifest["index_fingerprint"] == changed.fingerprint
    assert len(after.vector_ids) < len(first.vector_ids)
    assert project(changed, params).reused


def test_umap_stale_manifest_is_not_used(pixel_index):
    params = UmapParams(n_neighbors=6)
    first = project(pixel_index, params)
    man = first.path / "manifest.json"
    data = json.loads(man.read_text())
    data["embedder"] = "someone-else"
    man.write_text(json.dumps(data))
    assert not project(pixel_index, params).reused
    assert projection_dir(pixel_index, params) == first.path.parent


def test_subsample_policy_fits_on_part_and_places_the_rest(pixel_index):
    proj = project(pixel_index, UmapParams(n_neighbors=5), max_fit=30)
    assert proj.manifest["n_fit"] == 30 < proj.manifest["n_points"]
    assert np.isfinite(proj.coords).all() and len(proj.coords) == proj.manifest["n_points"]


def test_bad_umap_params_are_refused(pixel_index):
    with pytest.raises(ValueError, match="metric"):
        project(pixel_index, UmapParams(metric="hamming-ish"))
    with pytest.raises(ValueError, match="n_neighbors"):
        project(pixel_index, UmapParams(n_neighbors=1))


def test_decision_regions_follow_the_classifier(sample_index):
    """On a 7-class label the shaded cell under a catalog image mostly is the class the head gives that image."""
    head = train_classifier(sample_index, "category")
    proj = project(sample_index, UmapParams())
    vecs = np.asarray(sample_index.vectors[proj.vector_ids])
    reg = decision_regions(head, proj.coords, vecs, grid=150)
    assert reg.z.shape == (150, 150) and reg.classes == head.values
    pred, _ = head.predict(vecs)
    ix = np.clip(np.searchsorted(reg.xs, proj.coords[:, 0]), 0, 149)
    iy = np.clip(np.searchsorted(reg.ys, proj.coords[:, 1]), 0, 149)
    agree = np.mean([reg.classes[reg.z[j, i]] == p for i, j, p in zip(ix, iy, pred)])
    assert agree > 0.8, agree
    assert len(set(reg.z.ravel().tolist())) > 1


# ------------------------------------------------------------------ clothing (real photos)
@pytest.mark.slow
@pytest.mark.datasets
def test_clothing_subset_has_both_kinds(tmp_path, embedder):
    root = dataset("clothing")
    cat = load_catalog(root / "train")
    per: dict[str, list] = defaultdict(list)
    for r in cat.rows:
        if len(per[r.fields["category"]]) < 10:
            per[r.fields["category"]].append(r)
    sub = Catalog(cat.root, [r for rs in per.values() for r in rs], [], cat.columns)
    idx, _ = ProductIndex.build(sub, embedder, tmp_path / "idx")
    all_q = write_folder_queries(root / "validation", tmp_path / "all.csv")
    seen: dict[str, int] = defaultdict(int)
    keep = []
    for row in csv.DictReader(open(all_q)):
        if seen[row["category"]] < 6:
            seen[row["category"]] += 1
            keep.append(row)
    q = tmp_path / "q.csv"
    with open(q, "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "category"])
        w.writeheader()
        w.writerows(keep)
    rep = compare(idx, embedder, q, "category", root=root / "validation")
    assert len(rep.cases) == len(keep) == 60 and not rep.skipped
    check_against_direct(rep, idx, "category")
    assert rep.counts()["classifier_only"] > 0 and rep.counts()["neighbour_only"] > 0, rep.counts()


# ------------------------------------------------------------------ CLI
def test_cli_map_and_disagreements(tmp_path, pixel_index, capsys):
    from core.cli import main

    assert main(["map", "--index", str(pixel_index.root), "--out", str(tmp_path / "m.csv"), "--model",
                 "efficientnet-lite0"]) == 2  # wrong embedder for this index: one line, exit 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert main(["map", "--index", str(tmp_path / "missing"), "--out", str(tmp_path / "m.csv")]) == 2
    assert main(["folder-queries", str(tmp_path / "nowhere"), "--out", str(tmp_path / "q.csv")]) == 2


def test_cli_map_outputs(tmp_path, sample_index, capsys):
    from core.cli import main

    assert main(["map", "--index", str(sample_index.root), "--out", str(tmp_path / "m.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == int(sample_index.alive.sum()) and {"x", "y", "product_id", "category"} <= set(rows[0])
    assert main(["map", "--index", str(sample_index.root), "--out", str(tmp_path / "m.html")]) == 0
    assert "plotly" in (tmp_path / "m.html").read_text()[:200000].lower()
    assert "reused cached map" in capsys.readouterr().err
    assert main(["map", "--index", str(sample_index.root), "--out", str(tmp_path / "m.png")]) == 2


def test_cli_disagreements_json(tmp_path, sample_index, capsys):
    from core.cli import main

    rows = list(csv.DictReader(open(SAMPLE / "queries.csv")))[:10]
    q = SAMPLE / "queries.csv"
    small = tmp_path / "q.csv"
    with open(small, "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "product_id"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    assert q.is_file()
    assert main(["disagreements", "--index", str(sample_index.root), "--queries", str(small), "--root",
                 str(SAMPLE), "--label", "category", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_queries"] == 10 and set(d["counts"]) == set(KINDS)
    assert sum(d["counts"].values()) == 10
    assert 0 <= d["accuracy_classifier"] <= 1 and 0 <= d["accuracy_neighbour"] <= 1


# ------------------------------------------------------------------ pages
@pytest.fixture(scope="module")
def app_cache(sample_index):
    """The app's cached index of the sample catalog is the session's (no second embedding pass)."""
    from core.index.workspace import index_dir_for

    d = index_dir_for(SAMPLE, sample_index.spec)
    if not (d / "CURRENT").exists():
        shutil.copytree(sample_index.root, d, dirs_exist_ok=True)
    return d


def _run(page: str, state: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / page), default_timeout=600)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    return at.run()


def test_embedding_map_page(app_cache):
    at = _run("2_Embedding_map.py")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.get("component_instance")  # the map with pictures on hover (ui/hover_map.py)
    assert any("images" in c.value for c in at.caption)
    at.selectbox(key="map_colour").set_value("colour").run()
    assert not at.exception


def test_classifier_page(app_cache, tmp_path, monkeypatch):
    """A person opens the page while the map's maths are not prepared: the figures are shown without waiting
    for the map, which is drawn when asked for, with the same figures."""
    import ui.explore

    monkeypatch.setattr(ui.explore, "compiled", lambda: False)  # a fresh server: UMAP not compiled yet
    rows = list(csv.DictReader(open(SAMPLE / "queries.csv")))[:20]
    q = tmp_path / "q.csv"
    with open(q, "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "product_id"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    at = _run("3_Classifier_vs_neighbours.py",
              {"cvn_label": "category", "cvn_source": "A queries CSV", "cvn_csv": str(q), "cvn_root": str(SAMPLE)})
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    names = [m.label for m in at.metric]
    assert names == ["Classifier", "Closest catalog picture (pretrained)"]  # the sample ships no trained head
    figures = [m.value for m in at.metric]
    assert not at.get("plotly_chart") and at.toggle(key="cvn_map_on").value is False  # the map waits to be asked
    at.toggle(key="cvn_map_on").set_value(True).run()
    assert not at.exception and not at.error
    assert at.get("plotly_chart") and [m.value for m in at.metric] == figures


def test_map_colours_group_the_rare_values():
    """43 categories cannot be told apart by colour: the 11 most frequent keep theirs, the rest are one "other"."""
    from core.explore.map_view import MAX_GROUPS, point_groups

    rows = [{"c": f"v{i % 43}"} for i in range(43 * 2)] + [{"c": "v42"}] * 5
    groups = point_groups(rows, "c")
    assert len(groups) == MAX_GROUPS and "v42" in groups and list(groups)[-1] == "other (32 values)"
    assert sorted(i for idx in groups.values() for i in idx) == list(range(len(rows)))  # every point, once
    few = point_groups(rows[:10], "c")
    assert list(few) == [f"v{i}" for i in range(10)]  # few values: each its own colour, first-seen order
