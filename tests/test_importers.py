"""Dataset importers: counts, layout (images inside the output folder, hard-linked), errors."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from core.cli import main
from core.data.catalog import load_catalog
from core.data.import_datasets import download, import_clothing, import_grocery
from core.data.query_sets import read_queries
from tests.conftest import dataset


@pytest.fixture(scope="module")
def grocery(tmp_path_factory):
    src = dataset("grocery")
    out = tmp_path_factory.mktemp("grocery-import")
    return src, out, import_grocery(src / "dataset", out)  # PATH may be the dataset folder itself


@pytest.fixture(scope="module")
def clothing(tmp_path_factory):
    src = dataset("clothing")
    out = tmp_path_factory.mktemp("clothing-import")
    return src, out, import_clothing(src, out)


def _lines(p: Path) -> int:
    return sum(1 for line in p.read_text().splitlines() if line.strip())


def test_grocery_counts_and_layout(grocery):
    src, out, rep = grocery
    assert rep.products == 81 and rep.views == 2640 and rep.queries["val"] == 296
    assert rep.views == _lines(src / "dataset" / "train.txt") and not rep.skipped
    cat = load_catalog(out / "catalog")
    assert len(cat.products) == 81 and not cat.skipped
    fields = cat.products["Granny-Smith"]
    assert fields["category"] == "Apple" and "green apple" in fields["description"]
    assert len({f["category"] for f in cat.products.values()}) == rep.categories
    views, skipped = read_queries(out / "views" / "views.csv")
    assert len(views) == 2640 and not skipped and all(p.is_relative_to(out / "views") for p, _ in views)
    val, skipped = read_queries(out / "queries-val.csv")
    assert len(val) == 296 and not skipped and {lab for _, lab in val} <= set(cat.products)
    cats, _ = read_queries(out / "queries-val.csv", "category")
    assert {lab for _, lab in cats} <= {f["category"] for f in cat.products.values()}
    img = cat.path(cat.rows[0])
    assert img.is_relative_to(out / "catalog") and img.stat().st_nlink >= 2  # hard link, not a copy


def test_grocery_reimport_is_idempotent(grocery, tmp_path):
    src, out, rep = grocery
    again = import_grocery(src, out)  # PATH may also be the folder holding dataset/
    assert (again.products, again.views, again.queries) == (rep.products, rep.views, rep.queries)


def test_clothing_counts_per_split(clothing):
    src, out, rep = clothing
    train = {d.name: len(list(d.glob("*.jpg"))) for d in (src / "train").iterdir() if d.is_dir()}
    val = {d.name: len(list(d.glob("*.jpg"))) for d in (src / "validation").iterdir() if d.is_dir()}
    assert rep.categories == 10 == len(train)
    assert rep.products == sum(train.values()) and rep.queries["validation"] == sum(val.values())
    assert ("test" in rep.queries) == (src / "test").is_dir()
    cat = load_catalog(out / "catalog")
    per_cat: dict[str, int] = {}
    for f in cat.products.values():
        per_cat[f["category"]] = per_cat.get(f["category"], 0) + 1
    assert per_cat == train
    q, _ = read_queries(out / "queries-validation.csv", "category")
    assert len(q) == sum(val.values()) and {lab for _, lab in q} == set(val)


def test_bad_paths_and_offline_download_give_one_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match="classes.csv"):
        import_grocery(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="train/<category>"):
        import_clothing(tmp_path, tmp_path / "out")
    assert main(["import", "grocery", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(ValueError, match="offline"):
        download("clothing", tmp_path / "dl")
    assert main(["import", "clothing", "--download", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_views_in_catalog_adds_train_photos_as_product_images(grocery, tmp_path):
    from core.metric.train import training_samples

    src, _, rep = grocery
    out = tmp_path / "g"
    import_grocery(src, out, views_in_catalog=True)
    cat = load_catalog(out / "catalog")
    assert len(cat.products) == rep.products and len(cat.rows) == rep.products + rep.views
    assert {r.fields["kind"] for r in cat.rows} == {"iconic", "view"}
    samples = training_samples(out / "catalog", out / "views")  # each photo once: views stay views
    assert len(samples) == rep.products + rep.views and sum(s.is_catalog for s in samples) == rep.products
