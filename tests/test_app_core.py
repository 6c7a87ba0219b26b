"""The core functions behind the app: CSV escaping, Rocchio feedback, facets -> filters, crops, CLI edits."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.embedding import normalize
from core.embedding.decode import Crop, QueryError, crop
from core.index.catalog_edit import escape_cell
from core.search.facets import facets, where_clauses
from core.search.feedback import rocchio

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"


@pytest.mark.parametrize("raw,want", [("=1+1", "'=1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("+cmd", "'+cmd"),
                                      ("-x", "'-x"), ("-5.5", "-5.5"), ("Blue bag", "Blue bag"),
                                      ("a\nb", "a b")])
def test_escape_cell(raw, want):
    assert escape_cell(raw) == want


def test_rocchio_moves_toward_liked_and_away_from_disliked():
    rng = np.random.default_rng(0)
    q, like, dislike = normalize(rng.normal(size=(3, 16)))
    r = rocchio(q, like[None], dislike[None])
    assert abs(np.linalg.norm(r) - 1) < 1e-5
    assert r @ like > q @ like and r @ dislike < q @ dislike
    assert np.allclose(rocchio(q, np.zeros((0, 16)), np.zeros((0, 16))), q)


def test_facets_and_where(sample_catalog):
    fs = {f.column: f for f in facets(sample_catalog.products)}
    assert fs["category"].kind == "categorical" and "mug" in fs["category"].options
    assert "title" not in fs  # free text is not a facet
    assert fs["price"].kind == "numeric" and fs["price"].low < fs["price"].high
    full = (fs["price"].low, fs["price"].high)
    assert where_clauses({"category": [], "price": full}, list(fs.values())) == []
    assert where_clauses({"category": ["mug"], "price": (10.0, 20.0)}, list(fs.values())) == [
        "category=mug", "price=10..20"]


def test_crop_box_and_empty_crop():
    img = Image.new("RGB", (200, 100))
    assert crop(img, Crop(0.25, 0.5, 0.75, 1.0)).size == (100, 50)
    with pytest.raises(QueryError):
        crop(img, Crop(0.5, 0, 0.5, 1))


def test_cli_add_and_remove_product(tmp_path, capsys):
    from core.cli import main

    cat = tmp_path / "cat"
    (cat / "images").mkdir(parents=True)
    with open(SAMPLE / "catalog.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["product_id"] in ("P0000", "P0001", "P0002")]
    for r in rows:
        shutil.copy(SAMPLE / r["image"], cat / r["image"])
    with open(cat / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    photo = str(SAMPLE / "images" / "P0100.jpg")
    assert main(["add-product", "--catalog", str(cat), "--id", "X1", "--field", "title=@evil", photo]) == 0
    assert "added X1 (1 image(s)); 4 products live" in capsys.readouterr().out
    assert "'@evil" in (cat / "catalog.csv").read_text()
    assert main(["add-product", "--catalog", str(cat), "--id", "X1", photo]) == 2
    assert main(["remove-product", "--catalog", str(cat), "X1"]) == 0
    assert "3 products live" in capsys.readouterr().out
    assert "X1" not in (cat / "catalog.csv").read_text()


def _catalog_in(cat: Path, folder: str = "images") -> None:
    """Three sample products with their images in ``cat/folder``."""
    (cat / folder).mkdir(parents=True)
    with open(SAMPLE / "catalog.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["product_id"] in ("P0000", "P0001", "P0002")]
    for r in rows:
        shutil.copy(SAMPLE / r["image"], cat / folder / Path(r["image"]).name)
        r["image"] = f"{folder}/{Path(r['image']).name}"
    with open(cat / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_add_product_never_writes_through_a_symlink(tmp_path, capsys):
    from core.cli import main

    cat, outside = tmp_path / "cat", tmp_path / "outside"
    outside.mkdir()
    _catalog_in(cat, "photos")
    (cat / "images").symlink_to(outside, target_is_directory=True)
    before = (cat / "catalog.csv").read_text()
    photo = str(SAMPLE / "images" / "P0100.jpg")
    assert main(["add-product", "--catalog", str(cat), "--id", "X1", photo]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("embedding")]
    assert len(err) == 1 and "symbolic link" in err[0], err
    assert not list(outside.iterdir()) and (cat / "catalog.csv").read_text() == before
    # a link planted where the new image would go is left alone: the image gets another name inside the catalog
    (cat / "images").unlink()
    (cat / "images").mkdir()
    (outside / "victim.jpg").write_bytes(b"keep me")
    (cat / "images" / "X1.jpg").symlink_to(outside / "victim.jpg")
    assert main(["add-product", "--catalog", str(cat), "--id", "X1", photo]) == 0
    assert (outside / "victim.jpg").read_bytes() == b"keep me"
    added = [p for p in (cat / "images").iterdir() if not p.is_symlink()]
    assert len(added) == 1 and added[0].name.startswith("X1-") and added[0].name in (cat / "catalog.csv").read_text()
    # catalog.csv itself a link: refused. One leading outside the catalog is not even read; one that stays
    # inside is read, but never written through
    capsys.readouterr()
    for real in (tmp_path / "real.csv", cat / "real.csv"):
        real.write_text((cat / "catalog.csv").read_text())
        (cat / "catalog.csv").unlink()
        (cat / "catalog.csv").symlink_to(real)
        assert main(["add-product", "--catalog", str(cat), "--id", "X2", photo]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        said = "leads outside the catalog folder" if real.parent == tmp_path else "symbolic link; refusing to write"
        assert len(err) == 1 and said in err[0] and "X2" not in real.read_text(), err


def test_remove_products_keeps_every_other_line_verbatim(tmp_path):
    """A row the reader skips (an unclosed quote) must not swallow the rows after it when the file is rewritten."""
    from core.data.catalog import load_catalog
    from core.index.catalog_edit import remove_products
    from core.index.product_index import ProductIndex
    from tests.helpers import PixelEmbedder

    cat = tmp_path / "cat"
    _catalog_in(cat)
    header, *rows = (cat / "catalog.csv").read_text().splitlines(keepends=True)
    broken = 'images/P0000.jpg,PX,"Unclosed quote,mug\n'
    (cat / "catalog.csv").write_text(header + broken + "".join(rows))
    catalog = load_catalog(cat)
    assert [s.line for s in catalog.skipped] == [2] and len(catalog.rows) == len(rows)
    idx, _ = ProductIndex.build(catalog, PixelEmbedder(), tmp_path / "idx")
    res = remove_products(cat, idx, ["P0001"])
    kept = [r for r in rows if ",P0001," not in r]
    assert len(kept) < len(rows) and (cat / "catalog.csv").read_text() == header + broken + "".join(kept)
    assert sorted(load_catalog(cat).products) == ["P0000", "P0002"] and len(res.index) == 2
