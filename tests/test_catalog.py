"""Catalog parsing: CSV and image-folder layouts, and every kind of unusable row."""

from __future__ import annotations

import csv
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data.catalog import CatalogError, load_catalog, numeric_columns


def _img(path, colour=(200, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)


def test_csv_catalog_rows_products_and_columns(tmp_path):
    _img(tmp_path / "a.jpg")
    _img(tmp_path / "b.png")
    _img(tmp_path / "b2.png")
    (tmp_path / "catalog.csv").write_text(
        "image,product_id,title,category,colour,price\n"
        "a.jpg,,Red mug,mug,red,12.5\n"
        "b.png,B,Blue bag,bag,blue,40\n"
        "b2.png,B,Blue bag back,bag,blue,40\n",
        encoding="utf-8",
    )
    cat = load_catalog(tmp_path)
    assert [r.product_id for r in cat.rows] == ["a", "B", "B"]  # product_id defaults to the stem
    assert set(cat.products) == {"a", "B"}
    assert cat.products["B"]["title"] == "Blue bag"  # first row of a product supplies its fields
    assert cat.columns == ["title", "category", "colour", "price"]
    assert numeric_columns(cat.products, cat.columns) == ["price"]
    assert not cat.skipped


def test_bad_rows_are_skipped_and_reported(tmp_path):
    root = tmp_path / "cat"
    _img(root / "ok.jpg")
    _img(tmp_path / "outside.jpg")
    (root / "notes.txt").write_text("hello")
    os.symlink(tmp_path / "outside.jpg", root / "link.jpg")
    (root / "catalog.csv").write_text(
        "image,product_id,title\n"
        "ok.jpg,P1,fine\n"
        "missing.jpg,P2,missing\n"
        "../outside.jpg,P3,escapes\n"
        f"{tmp_path / 'outside.jpg'},P4,absolute\n"
        "link.jpg,P5,symlink out\n"
        "ok.jpg,P1,duplicate\n"
        "notes.txt,P6,not an image\n"
        ",P7,empty\n"
        "ok.jpg,P8,too,many,cells\n",
        encoding="utf-8",
    )
    cat = load_catalog(root)
    assert [r.product_id for r in cat.rows] == ["P1"]
    reasons = {s.line: s.reason for s in cat.skipped}
    assert "not found" in reasons[3]
    assert "leaves the catalog" in reasons[4]
    assert "absolute" in reasons[5]
    assert "leaves the catalog" in reasons[6]
    assert "duplicate" in reasons[7]
    assert "extension" in reasons[8]
    assert "empty" in reasons[9]
    assert "more cells" in reasons[10]
    assert all(str(s).startswith("line ") for s in cat.skipped)


def test_missing_image_column_and_missing_folder(tmp_path):
    (tmp_path / "catalog.csv").write_text("path,title\nx.jpg,X\n")
    with pytest.raises(CatalogError, match="no 'image' column"):
        load_catalog(tmp_path)
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope")


def test_empty_catalog_is_an_error(tmp_path):
    (tmp_path / "catalog.csv").write_text("image,title\nmissing.jpg,X\n")
    with pytest.raises(CatalogError, match="no usable images"):
        load_catalog(tmp_path)


def test_non_utf8_csv_is_read_with_a_warning(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "catalog.csv").write_bytes("image,title\na.jpg,Café crème\n".encode("cp1252"))
    cat = load_catalog(tmp_path)
    assert cat.products["a"]["title"] == "Café crème"
    assert cat.warnings and "UTF-8" in cat.warnings[0]


def test_formula_like_cells_are_kept_as_text(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "catalog.csv").write_text('image,title\na.jpg,"=cmd|\' /C calc\'!A0"\n')
    assert load_catalog(tmp_path).products["a"]["title"] == "=cmd|' /C calc'!A0"


def test_image_folder_layout(tmp_path):
    _img(tmp_path / "shoes" / "s1.jpg")
    _img(tmp_path / "shoes" / "s2.jpg")
    _img(tmp_path / "hats" / "h1.png")
    _img(tmp_path / "queries" / "q.jpg")  # shopper photos are not catalog products
    cat = load_catalog(tmp_path)
    assert sorted(r.product_id for r in cat.rows) == ["h1", "s1", "s2"]
    assert cat.products["h1"]["category"] == "hats"


def test_fingerprint_changes_with_image_bytes(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "catalog.csv").write_text("image\na.jpg\n")
    f1 = load_catalog(tmp_path).fingerprint()
    assert load_catalog(tmp_path).fingerprint() == f1
    _img(tmp_path / "a.jpg", colour=(0, 0, 200))
    assert load_catalog(tmp_path).fingerprint() != f1


def test_sample_catalog_is_well_formed(sample_catalog):
    assert len(sample_catalog.products) >= 200
    assert len({p["category"] for p in sample_catalog.products.values()}) >= 6
    assert not sample_catalog.skipped
    assert len(sample_catalog.rows) == 2 * len(sample_catalog.products)  # two studio shots per product


_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_cell, min_size=0, max_size=5), max_size=8), st.sampled_from(["image,product_id,title",
                                                                                        "image", "title,image"]))
def test_fuzz_random_csv_rows(tmp_path_factory, rows, header):
    root = tmp_path_factory.mktemp("fuzz")
    _img(root / "a.jpg")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header.split(","))
    w.writerow(["a.jpg"] + ["x"] * header.count(",")) if header.startswith("image") else w.writerow(["t", "a.jpg"])
    w.writerows(rows)
    (root / "catalog.csv").write_text(buf.getvalue(), encoding="utf-8")
    cat = load_catalog(root)  # never raises: the one good row is always there
    assert any(r.image == "a.jpg" for r in cat.rows)
    for r in cat.rows:
        assert (root / r.image).resolve().is_relative_to(root.resolve())
    assert len(cat.rows) + len(cat.skipped) >= 1


def _rows_csv(root, body: str) -> None:
    for i in range(1, 6):
        _img(root / f"i{i}.jpg")
    (root / "catalog.csv").write_text("image,product_id,title\n" + body, encoding="utf-8")


def test_unterminated_quote_costs_one_reported_row(tmp_path):
    _rows_csv(tmp_path, 'i1.jpg,P1,"Red mug\ni2.jpg,P2,Blue bag\ni3.jpg,P3,Green hat\ni4.jpg,P4,Grey\n')
    cat = load_catalog(tmp_path)
    assert [r.product_id for r in cat.rows] == ["P2", "P3", "P4"]  # nothing after the bad quote is lost
    assert [(s.line, s.reason.split(":")[0]) for s in cat.skipped] == [(2, "unterminated quote")]
    assert str(cat.skipped[0]).startswith("line 2 ")


def test_stray_quotes_and_huge_cells_are_skipped_with_their_line(tmp_path):
    huge = "x" * (200 * 1024)
    _rows_csv(tmp_path, f'i1.jpg,P1,"Red" mug\ni2.jpg,P2,{huge}\ni3.jpg,P3,"{huge}"\ni4.jpg,P4,"Fine, quoted"\n'
                        'i5.jpg,P5,"5"" screen"\n')
    cat = load_catalog(tmp_path)
    assert [(r.product_id, r.fields["title"]) for r in cat.rows] == [("P4", "Fine, quoted"), ("P5", '5" screen')]
    reasons = {s.line: s.reason for s in cat.skipped}
    assert "stray quote" in reasons[2] and "128 KiB" in reasons[3] and "128 KiB" in reasons[4]
    assert all("\n" not in str(s) for s in cat.skipped)


def test_quoted_cells_over_lines(tmp_path):
    _rows_csv(tmp_path, 'i1.jpg,P1,"Two\nlines"\ni2.jpg,"P2\ni3.jpg,P3,x"\ni4.jpg,P4,ok\n')
    cat = load_catalog(tmp_path)
    assert [(r.product_id, r.line) for r in cat.rows] == [("P1", 2), ("P4", 6)]
    assert cat.rows[0].fields["title"] == "Two\nlines"
    assert [s.line for s in cat.skipped] == [4] and "lines 4-5" in cat.skipped[0].reason  # two of three cells
    assert any("spans lines" in w and "2-3" in w for w in cat.warnings)


def test_a_broken_header_is_one_line(tmp_path):
    (tmp_path / "catalog.csv").write_text('image,"title\na.jpg,x\n')
    with pytest.raises(CatalogError, match=r"^catalog.csv line 1: unterminated quote") as e:
        load_catalog(tmp_path)
    assert "\n" not in str(e.value)


def _old_fingerprint(cat) -> str:
    """The fingerprint as first defined (no cache): existing indexes must stay current for it."""
    import hashlib

    h = hashlib.sha256()
    for r in sorted(cat.rows, key=lambda r: (r.product_id, r.image)):
        h.update(repr((r.product_id, r.image, sorted(r.fields.items()))).encode())
        h.update(hashlib.sha1((cat.root / r.image).read_bytes()).hexdigest().encode())
    return h.hexdigest()[:16]


def test_fingerprint_hashes_only_changed_files(tmp_path, monkeypatch):
    import core.data.digests as digests

    for i in range(4):
        _img(tmp_path / f"{i}.jpg", colour=(i * 40, 0, 0))
        os.utime(tmp_path / f"{i}.jpg", ns=(1_600_000_000 * 10**9,) * 2)  # not written just now
    (tmp_path / "catalog.csv").write_text("image,title\n" + "".join(f"{i}.jpg,T{i}\n" for i in range(4)))
    hashed = []
    real = digests.file_digest
    monkeypatch.setattr(digests, "file_digest", lambda p: hashed.append(p.name) or real(p))
    cat = load_catalog(tmp_path)
    first = cat.fingerprint()
    assert first == _old_fingerprint(cat) and sorted(hashed) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    cache = list((digests.cache_dir() / "digests").glob("*.json"))
    assert cache and all(c.read_text().startswith("{") for c in cache)
    hashed.clear()
    assert load_catalog(tmp_path).fingerprint() == first and hashed == []  # a new session: nothing re-read
    _img(tmp_path / "2.jpg", colour=(0, 0, 250))
    cat = load_catalog(tmp_path)
    assert cat.fingerprint() not in (first, None) and hashed == ["2.jpg"]
    assert cat.fingerprint() == _old_fingerprint(cat)
    for c in cache:
        c.write_text("{garbage")  # a damaged cache only costs the hashing
    hashed.clear()
    assert cat.fingerprint() == _old_fingerprint(cat) and len(hashed) == 4


def test_queries_csv_quoting_errors_cost_one_row(tmp_path):
    from core.data.query_sets import read_queries

    _rows_csv(tmp_path, "")
    (tmp_path / "q.csv").write_text(f'image,product_id\ni1.jpg,"P1\ni2.jpg,P2\ni3.jpg,{"x" * 140_000}\ni4.jpg,P4\n')
    rows, skipped = read_queries(tmp_path / "q.csv")
    assert [(p.name, lab) for p, lab in rows] == [("i2.jpg", "P2"), ("i4.jpg", "P4")]
    assert [s.split(" (")[0] for s in skipped] == ["line 2", "line 4"]
    assert "unterminated quote? a quoted cell runs over lines 2-4" in skipped[0] and "128 KiB" in skipped[1]
