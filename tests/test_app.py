"""The Streamlit app driven headlessly with ``streamlit.testing.v1.AppTest``: search, filters, feedback,
crop, text, catalog add/remove/compact and the error messages users see."""

from __future__ import annotations

import csv
import io
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.images import open_image
from core.embedding.query import embed_query
from core.index.workspace import index_dir_for
from core.search.engine import Searcher, SearchOptions
from ui.messages import md

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"
APP = str(ROOT / "app.py")
CATALOG_PAGE = str(ROOT / "pages" / "1_Catalog.py")
TIMEOUT = 240
RESULT = re.compile(r"^#(\d+) · (\S+) · similarity (-?[\d.]+)")


@pytest.fixture(scope="module")
def seeded_sample(sample_index):
    """Put the session's sample index where the app looks for it, so the app does not build it again."""
    d = index_dir_for(SAMPLE, sample_index.spec)
    if not (d / "CURRENT").exists():
        d.mkdir(parents=True, exist_ok=True)
        shutil.copytree(sample_index.gen, d / sample_index.gen.name)
        (d / "CURRENT").write_text(sample_index.gen.name)
    return sample_index


@pytest.fixture(scope="module")
def ranker(seeded_sample, embedder):
    return Searcher(seeded_sample, embedder)


def core_search(index, embedder, searcher, path: Path, rank: str = "static", k: int = 10):
    """What the engine's default search returns for an image file (the app must show the same)."""
    return searcher.search(embed_query(embedder, path), SearchOptions(k=k, rank=rank)).hits


@pytest.fixture(scope="module")
def found_query(seeded_sample, embedder, ranker):
    """A sample query photo whose product the engine ranks first (computed, not assumed)."""
    with open(SAMPLE / "queries.csv", newline="") as f:
        for row in csv.DictReader(f):
            path = SAMPLE / row["image"]
            if core_search(seeded_sample, embedder, ranker, path, k=1)[0].product_id == row["product_id"]:
                return path, row["product_id"]
    pytest.fail("the engine ranks no sample query's product first")


def results(at: AppTest) -> list[tuple[int, str, float]]:
    """(rank, product_id, score) of each result card, in page order."""
    out = []
    for c in at.caption:
        if m := RESULT.match(c.value):
            out.append((int(m[1]), m[2], float(m[3])))
    return out


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def start(page: str = APP, catalog: Path | None = None, spec: str = "") -> AppTest:
    at = AppTest.from_file(page, default_timeout=TIMEOUT)
    run(at)
    if catalog is not None:
        at.sidebar.selectbox(key="vps_catalog").set_value("Other folder…")
        run(at)
        at.sidebar.text_input(key="vps_catalog_path").set_value(str(catalog))
        run(at)
    if spec:
        at.sidebar.text_input(key="vps_spec_custom").set_value(spec)
        run(at)
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="source").set_value("Upload a photo")
    run(at)
    at.file_uploader(key="upload").set_value((name, data, "image/jpeg"))
    return run(at)


def small_catalog(dst: Path, n_products: int = 24) -> Path:
    """A copy of the first ``n_products`` of the sample catalog (fast to index), with its queries."""
    with open(SAMPLE / "catalog.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = sorted({r["product_id"] for r in rows})[:n_products]
    rows = [r for r in rows if r["product_id"] in keep]
    (dst / "images").mkdir(parents=True)
    for r in rows:
        shutil.copy(SAMPLE / r["image"], dst / r["image"])
    with open(dst / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst


# ------------------------------------------------------------------ search
def test_example_photo_finds_its_product(seeded_sample, found_query, embedder, ranker):
    path, pid = found_query
    at = start()
    at.selectbox(key="example").set_value(path)
    run(at)
    res = results(at)
    assert res and res[0][:2] == (1, pid)
    assert len(res) == 10
    assert [r[0] for r in res] == list(range(1, 11))
    want = core_search(seeded_sample, embedder, ranker, path)  # re-ranked by the attribute filters by default
    assert [r[1] for r in res] == [h.product_id for h in want]
    assert [r[2] for r in res] == pytest.approx([h.similarity for h in want], abs=1e-3)
    why = [c.value for c in at.caption if c.value.startswith("score ")]  # each card says why it ranks there
    assert len(why) == 10 and why[0].startswith(f"score {want[0].score:.2f} = similarity")
    at.sidebar.toggle(key="rerank").set_value(False)  # distance only: similarity never increases down the list
    res = results(run(at))
    assert all(a[2] >= b[2] for a, b in zip(res, res[1:]))
    assert [r[1] for r in res] == [h.product_id for h in core_search(seeded_sample, embedder, ranker, path,
                                                                     rank="distance")]
    assert any("Text search is off" in c.value for c in at.caption)  # default embedder has no text tower
    assert "text" not in [w.key for w in at.text_input]


def test_a_rerun_that_keeps_the_view_neither_searches_nor_reads_the_catalog_again(seeded_sample, found_query,
                                                                                  monkeypatch):
    """A rerun that changes nothing of the view shows the same cards without searching again or working out the
    catalog's column types and filters again; a change of the view (the ranking) searches again."""
    import ui.view as view

    calls = {"search": 0, "types": 0}
    real_search, real_types = Searcher.search, view.catalog_column_types

    def search(self, *a, **kw):
        calls["search"] += 1
        return real_search(self, *a, **kw)

    def types(*a, **kw):
        calls["types"] += 1
        return real_types(*a, **kw)

    monkeypatch.setattr(Searcher, "search", search)
    monkeypatch.setattr(view, "catalog_column_types", types)
    path, _ = found_query
    at = start()
    at.selectbox(key="example").set_value(path)
    shown, before = results(run(at)), dict(calls)  # the run is over once the attribute filters are ready
    assert before["search"] >= 1 and len(shown) == 10
    assert results(run(at)) == shown and results(run(at)) == shown
    assert calls == before
    at.sidebar.toggle(key="rerank").set_value(False)
    by_distance = results(run(at))
    assert calls["search"] == before["search"] + 1 and calls["types"] == before["types"]
    assert all(a[2] >= b[2] for a, b in zip(by_distance, by_distance[1:]))


def test_uploaded_photo_finds_its_product(seeded_sample, found_query):
    path, pid = found_query
    at = upload(start(), path.name, path.read_bytes())
    assert results(at)[0][:2] == (1, pid)
    assert not errors(at)


def test_crop_changes_the_query(seeded_sample, found_query):
    path, _ = found_query
    at = start()
    at.selectbox(key="example").set_value(path)
    before = results(run(at))
    x = next(s for s in at.slider if s.key.startswith("crop_x_"))
    x.set_value((30, 70))
    after = results(run(at))
    assert [r[2] for r in after] != [r[2] for r in before]


def test_filters_and_min_similarity(seeded_sample, found_query, sample_catalog):
    path, _ = found_query
    at = start()
    at.selectbox(key="example").set_value(path)
    run(at)
    at.sidebar.multiselect(key="filter_category").set_value(["mug", "lamp"])
    at.sidebar.slider(key="filter_price").set_value((10.0, 40.0))
    run(at)
    res = results(at)
    assert res
    for _, pid, _ in res:
        f = sample_catalog.products[pid]
        assert f["category"] in ("mug", "lamp") and 10.0 <= float(f["price"]) <= 40.0
    assert any("category=mug,lamp" in m.value for m in at.markdown)


    at = start()
    at.selectbox(key="example").set_value(path)
    at.sidebar.slider(key="min_score").set_value(0.85)
    run(at)
    res = results(at)
    assert res and all(s >= 0.85 for _, _, s in res) and len(res) < 10
    at.sidebar.slider(key="min_score").set_value(1.0)
    run(at)
    assert not results(at)
    assert any("No product passes" in i.value for i in at.info)


def test_feedback_moves_liked_up_and_reset_restores(seeded_sample, found_query):
    path, _ = found_query
    at = start()
    at.selectbox(key="example").set_value(path)
    before = results(run(at))
    liked = before[4][1]  # the fifth result
    disliked = before[1][1]
    at.button(key=f"up_{liked}").click()
    run(at)
    at.button(key=f"down_{disliked}").click()
    after = results(run(at))
    rank = {pid: r for r, pid, _ in after}
    assert rank[liked] < 5
    assert rank.get(disliked, 99) > 2
    assert any("refined by feedback (1 liked, 1 disliked)" in m.value for m in at.markdown)
    at.button(key="reset_feedback").click()
    assert results(run(at)) == before


# ------------------------------------------------------------------ text (open_clip)
def test_text_box_with_open_clip(tmp_path, tiny_clip):
    cat = small_catalog(tmp_path / "cat", 10)
    at = start(catalog=cat, spec="open_clip:vps-tiny-vit:random")
    assert at.text_input(key="text")
    at.radio(key="source").set_value("Upload a photo")
    at.text_input(key="text").set_value("green dress with stars")
    res = results(run(at))
    seen = ([e.value for e in at.error], [c.value for c in at.caption][:4])
    assert len(res) == 10 and res[0][0] == 1, seen  # text alone searches
    img = (cat / "images" / "P0000.jpg").read_bytes()
    at.file_uploader(key="upload").set_value(("P0000.jpg", img, "image/jpeg"))
    score = lambda rows: {pid: s for _, pid, s in rows}  # noqa: E731 - by product, whatever the re-ranking
    both = results(run(at))
    assert len(both) == 10 and score(both) != score(res)  # the photo changes the query
    at.slider(key="text_weight").set_value(1.0)
    assert score(results(run(at))) == score(res)  # all weight on the words: the photo's vector is left out
    at.slider(key="text_weight").set_value(0.0)
    photo = results(run(at))
    assert photo[0][1:] == ("P0000", 1.0)  # all weight on the photo: its own catalog picture comes first


# ------------------------------------------------------------------ catalog page
def test_add_search_remove_compact(tmp_path, embedder, sample_catalog):
    cat = small_catalog(tmp_path / "cat")
    new_photo = SAMPLE / "images" / "P0200.jpg"  # a product the small catalog does not have
    page = start(CATALOG_PAGE, catalog=cat)
    assert page.metric[0].value == "24"
    page.text_input(key="add_pid").set_value("NEW-1")
    page.text_input(key="add_title").set_value("=HYPERLINK(\"http://x\")")
    page.text_input(key="add_category").set_value("lamp")
    page.text_input(key="add_price").set_value("19.5")
    page.file_uploader(key="add_images").set_value([("a.jpg", new_photo.read_bytes(), "image/jpeg")])
    next(b for b in page.button if b.label == "Add to the catalog").click()
    run(page)
    assert not errors(page), errors(page)
    assert any("Added NEW-1 with 1 image(s)" in s.value for s in page.success)
    assert page.metric[0].value == "25" and page.metric[2].value == "1"
    text = (cat / "catalog.csv").read_text()
    assert "NEW-1" in text and "'=HYPERLINK" in text  # escaped: spreadsheets will not run it

    search = upload(start(catalog=cat), "shot.jpg", new_photo.read_bytes())
    assert results(search)[0][1] == "NEW-1"  # searchable at once, without a rebuild

    page.multiselect(key="remove_pick").set_value(["NEW-1"])
    run(page)
    page.button(key="remove_go").click()
    run(page)
    assert any("Removed NEW-1" in s.value for s in page.success)
    assert page.metric[0].value == "24" and page.metric[3].value == "1"
    assert "NEW-1" not in (cat / "catalog.csv").read_text()
    assert "NEW-1" not in [r[1] for r in results(run(search))]

    page.button(key="compact_go").click()
    run(page)
    assert any("Tidied up the search: 24 products" in s.value for s in page.success)
    assert page.metric[3].value == "0"
    again = start(CATALOG_PAGE, catalog=cat)  # a fresh session: nothing rebuilt, the edits persisted
    assert again.metric[0].value == "24" and not again.get("progress")


def test_add_rejects_bad_input_and_writes_nothing(tmp_path):
    cat = small_catalog(tmp_path / "cat", 6)
    before = (cat / "catalog.csv").read_bytes()
    page = start(CATALOG_PAGE, catalog=cat)
    page.text_input(key="add_pid").set_value("P0000")  # taken
    page.file_uploader(key="add_images").set_value([("a.jpg", (cat / "images/P0001.jpg").read_bytes(), "image/jpeg")])
    next(b for b in page.button if b.label == "Add to the catalog").click()
    run(page)
    assert errors(page) == ["product id P0000 is already in the catalog"]
    page.text_input(key="add_pid").set_value("")
    page.file_uploader(key="add_images").set_value([("a.jpg", b"not an image at all", "image/jpeg")])
    next(b for b in page.button if b.label == "Add to the catalog").click()
    run(page)
    assert errors(page) == ["not an image file (unrecognised format)"]
    assert (cat / "catalog.csv").read_bytes() == before


# ------------------------------------------------------------------ errors users cause
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims to be ``width`` x ``height`` (a decompression bomb's header), with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_not_an_image_and_huge_image(seeded_sample):
    at = upload(start(), "notes.jpg", b"these are my shopping notes, not a photo")
    assert errors(at) == ["not an image file (unrecognised format)"]
    assert not results(at)
    at.file_uploader(key="upload").set_value(("huge.png", _png_header_only(40_000, 40_000), "image/png"))
    run(at)
    assert len(errors(at)) == 1 and "more than the" in errors(at)[0] and "pixel limit" in errors(at)[0]


def test_missing_and_empty_catalog_folders(tmp_path):
    at = start(catalog=tmp_path / "does-not-exist")
    assert errors(at) == [md(f"catalog folder not found: {tmp_path / 'does-not-exist'}")]  # shown as text
    (tmp_path / "empty").mkdir()
    at.sidebar.text_input(key="vps_catalog_path").set_value(str(tmp_path / "empty"))
    run(at)
    assert len(errors(at)) == 1 and "has no usable images" in errors(at)[0]
    page = start(CATALOG_PAGE, catalog=tmp_path / "empty")
    assert len(errors(page)) == 1 and "has no usable images" in errors(page)[0]


def test_unknown_embedder_spec_is_one_line(tmp_path):
    at = start(catalog=small_catalog(tmp_path / "cat", 4), spec="no-such-model")
    assert len(errors(at)) == 1 and errors(at)[0].startswith("unknown embedder spec 'no-such-model'")


def test_png_helper_is_rejected_by_core():
    from core.data.images import ImageError

    with pytest.raises(ImageError, match="pixel limit"):
        open_image(io.BytesIO(_png_header_only(40_000, 40_000)))
