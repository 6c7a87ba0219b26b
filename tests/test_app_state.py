"""One app state across pages and in the URL (``ui/state.py``), driven headlessly with ``AppTest``: a person picks
an imported catalog and a cropped example query, visits every page and comes back; a link reopens the same view;
a bad embedder spec is one line and the app goes on."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.embedding.decode import Crop
from core.embedding.query import embed_query
from core.index.workspace import ensure_index, index_dir_for
from core.search.engine import Searcher, SearchOptions
from tests.test_app import RESULT, errors, run
from ui.state import FULL, AppState, parse_box

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"
APP = "app.py"
SEARCH = "pages/0_Search.py"  # the search page, as app.py's navigation names it
PAGES = ["pages/1_Catalog.py", "pages/2_Embedding_map.py", "pages/3_Classifier_vs_neighbours.py",
         "pages/4_Why_these_results.py", "pages/5_Evaluation.py"]
TIMEOUT = 300
MINI = "mini"  # the imported dataset's key (and its name in the URL)
LABEL = "Dataset: mini"


def mini_catalog(dst: Path) -> Path:
    """Twelve sample products of every category (the products of every 10th sample query), with those queries."""
    with open(SAMPLE / "queries.csv", newline="") as f:
        queries = list(csv.DictReader(f))[::10]
    keep = {q["product_id"] for q in queries}
    with open(SAMPLE / "catalog.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["product_id"] in keep]
    (dst / "images").mkdir(parents=True)
    (dst / "queries").mkdir()
    for r in [*rows, *queries]:
        shutil.copy(SAMPLE / r["image"], dst / r["image"])
    for name, table in (("catalog.csv", rows), ("queries.csv", queries)):
        with open(dst / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return dst


@pytest.fixture
def cache(tmp_path, monkeypatch, sample_index):
    """A fresh app cache holding the sample's index (not rebuilt) and an imported dataset ``mini``."""
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    d = index_dir_for(SAMPLE, sample_index.spec)
    d.mkdir(parents=True)
    shutil.copytree(sample_index.gen, d / sample_index.gen.name)
    (d / "CURRENT").write_text(sample_index.gen.name)
    return mini_catalog(tmp_path / "cache" / "imports" / MINI / "catalog")


@pytest.fixture
def mini_searcher(cache, embedder):
    return Searcher(ensure_index(cache, embedder), embedder)


def results(at: AppTest) -> list[tuple[str, float]]:
    """(product_id, similarity) of each search result card, in page order."""
    return [(m[2], float(m[3])) for c in at.caption if (m := RESULT.match(c.value))]


def page(at: AppTest, path: str) -> AppTest:
    at.switch_page(path)
    return run(at)


def catalog_shown(at: AppTest) -> str:
    return at.sidebar.selectbox(key="vps_catalog").value


def query_shown(at: AppTest) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The example photo and crop the query picker shows."""
    pick = at.selectbox(key="example").value
    x = next(s.value for s in at.slider if s.key.startswith("crop_x_"))
    y = next(s.value for s in at.slider if s.key.startswith("crop_y_"))
    return pick.name, x, y


def expected_hits(searcher: Searcher, photo: Path, crop: Crop) -> list[str]:
    """What the engine's default search returns for the photo and crop (what every page must use)."""
    return [h.product_id for h in searcher.search(embed_query(searcher.embedder, photo, crop=crop),
                                                  SearchOptions(k=10)).hits]


def pick_cropped_query(at: AppTest, catalog: Path) -> tuple[str, Crop]:
    """On the search page: the third example photo, cropped to its middle 80% across."""
    photo = sorted((catalog / "queries").iterdir())[2]
    at.selectbox(key="example").set_value(photo)
    run(at)
    next(s for s in at.slider if s.key.startswith("crop_x_")).set_value((10, 90))
    run(at)
    return photo.name, Crop(0.1, 0.0, 0.9, 1.0)


@pytest.mark.slow
def test_one_state_follows_a_person_across_every_page(cache, mini_searcher):
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    run(at)
    assert catalog_shown(at) == "Sample catalog" and at.query_params["catalog"] == "sample"
    at.sidebar.selectbox(key="vps_catalog").set_value(LABEL)
    run(at)
    name, crop = pick_cropped_query(at, cache)
    want = expected_hits(mini_searcher, cache / "queries" / name, crop)
    seen = results(at)
    assert [pid for pid, _ in seen] == want
    url = {"catalog": MINI, "spec": "efficientnet-lite0", "q": name, "crop": "10,0,90,100"}
    assert at.query_params == url
    n_products, n_images = len(mini_searcher.index), int(mini_searcher.index.alive.sum())

    page(at, PAGES[0])  # Catalog: the catalog it edits is the one chosen
    assert catalog_shown(at) == LABEL and at.query_params == url
    assert at.metric[0].value == str(n_products) and str(cache) in at.caption[0].proto.help.replace("\\", "")

    page(at, PAGES[1])  # Embedding map: that catalog's images; the query placed is the search page's
    assert catalog_shown(at) == LABEL and not errors(at)
    assert any(c.value.startswith(f"{n_images} images") for c in at.caption)
    at.toggle(key="map_place").set_value(True)
    run(at)
    assert query_shown(at) == (name, (10, 90), (0, 100)) and not errors(at)
    assert any(s.value == "Nearest products in the full space" for s in at.subheader)

    page(at, PAGES[2])  # Classifier vs neighbours: the catalog's own labelled queries
    assert catalog_shown(at) == LABEL and not errors(at)
    assert at.radio(key="cvn_source").value == "queries.csv (12 photos)"
    assert any(s.value == "Classifier right, neighbour wrong" for s in at.subheader)
    assert any(c.value.startswith("Share of the 12 photos it never saw (queries.csv)") for c in at.caption)

    page(at, PAGES[3])  # Why these results: the same photo and crop, hence the same ranking
    assert catalog_shown(at) == LABEL and not errors(at)
    assert query_shown(at) == (name, (10, 90), (0, 100))
    why = [c.value.split(" ")[1] for c in at.caption if c.value.startswith("#")]
    assert why == want and at.query_params == url

    page(at, PAGES[4])  # Evaluation: the catalog's queries
    assert catalog_shown(at) == LABEL
    assert at.selectbox(key="ev_queries").value == str(cache / "queries.csv")

    page(at, SEARCH)  # back: the same catalog, photo, crop and results
    assert catalog_shown(at) == LABEL and query_shown(at) == (name, (10, 90), (0, 100))
    assert results(at) == seen and at.query_params == url


@pytest.mark.slow
def test_a_link_reopens_the_same_catalog_and_query(cache, mini_searcher):
    name = sorted((cache / "queries").iterdir())[2].name
    want = expected_hits(mini_searcher, cache / "queries" / name, Crop(0.1, 0.0, 0.9, 1.0))
    for path in (APP, PAGES[3]):  # the search page, and a link straight to "Why these results"
        at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
        at.query_params.update({"catalog": MINI, "q": name, "crop": "10,0,90,100"})
        run(at)
        assert catalog_shown(at) == LABEL and not errors(at)
        assert query_shown(at) == (name, (10, 90), (0, 100))
        if path == APP:
            assert [pid for pid, _ in results(at)] == want
        else:
            assert [c.value.split(" ")[1] for c in at.caption if c.value.startswith("#")] == want
        assert at.query_params == {"catalog": MINI, "spec": "efficientnet-lite0", "q": name, "crop": "10,0,90,100"}


@pytest.mark.slow
def test_a_bad_link_or_spec_is_one_line_and_the_app_goes_on(cache, mini_searcher):
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    at.query_params.update({"catalog": MINI, "q": "../../etc/passwd", "crop": "90,0,10,100"})
    run(at)  # an unusable query name and crop: the first example, uncropped
    first = sorted((cache / "queries").iterdir())[0].name
    assert query_shown(at) == (first, (0, 100), (0, 100)) and not errors(at)
    before = results(at)
    assert before

    at.sidebar.text_input(key="vps_spec_custom").set_value("no-such-model")
    run(at)
    assert len(errors(at)) == 1 and errors(at)[0].startswith("unknown embedder spec 'no-such-model'")
    assert "still using efficientnet-lite0" in errors(at)[0]
    assert results(at) == before and at.query_params["spec"] == "efficientnet-lite0"

    page(at, PAGES[0])  # the next page: the same one line, and the page still works with the last good spec
    assert len(errors(at)) == 1 and at.metric[0].value == str(len(mini_searcher.index))
    at.sidebar.text_input(key="vps_spec_custom").set_value("")
    run(at)
    assert not errors(at)
    page(at, SEARCH)
    assert not errors(at) and results(at) == before


def test_state_round_trips_through_the_url():
    s = AppState.from_params({"catalog": "grocery", "spec": "efficientnet-lite0+head:/m", "q": "a.jpg",
                              "crop": "5,10,95,80"})
    assert (s.catalog, s.spec_choice, s.spec_typed, s.example, s.crop) == (
        "grocery", "efficientnet-lite0", "efficientnet-lite0+head:/m", "a.jpg", (5, 10, 95, 80))
    assert s.spec == "efficientnet-lite0"  # only a spec that loaded becomes the state's
    s.spec = s.spec_typed
    back = AppState.from_params(s.to_params())
    assert (back.catalog, back.spec_typed, back.example, back.crop, back.crop_for) == (
        s.catalog, s.spec, s.example, s.crop, s.crop_for)
    assert s.to_params()["crop"] == "5,10,95,80"
    s.source = "upload"
    assert set(s.to_params()) == {"catalog", "spec"}  # an uploaded photo cannot travel in a link
    for bad in ("", "1,2,3", "a,b,c,d", "50,0,50,100", "0,0,101,100", "-1,0,50,50"):
        assert parse_box(bad) == FULL
    assert AppState.from_params({"q": "../x.jpg"}).example == ""
    assert AppState.from_params({"catalog": ["a", "b"]}).catalog == "b"
    assert AppState.from_params({}).to_params() == {"catalog": "sample", "spec": "efficientnet-lite0"}


def test_the_view_round_trips_through_the_url():
    """Results count, minimum similarity, ranking, filters (categorical, numeric) and thumbs travel in a link;
    unusable values fall back to the defaults."""
    s = AppState.from_params({"q": "a.jpg"})
    s.k, s.min_score, s.rank = 7, 0.25, "distance"
    s.filters = {"category": ["bag", "shoe, red"], "price": (10.0, 59.5)}
    s.votes = {"P0029": 1, "P0003": -1, "P0007": 1}
    params = s.to_params()
    assert params["like"] == ["P0029", "P0007"] and params["dislike"] == ["P0003"]
    back = AppState.from_params(params)
    assert (back.k, back.min_score, back.rank, back.filters, back.votes) == (
        s.k, s.min_score, s.rank, s.filters, s.votes)
    assert back.votes_for is None  # a link's thumbs belong to the first query it shows
    bad = AppState.from_params({"k": "0", "min": "2", "rank": "nope", "f.": "x", "like": ""})
    assert (bad.k, bad.min_score, bad.rank, bad.filters, bad.votes) == (10, 0.0, "static", {}, {})
    assert set(AppState.from_params({"k": "10", "min": "0", "rank": "static"}).to_params()) == {"catalog", "spec"}


def test_catalog_text_is_escaped_for_markdown():
    from core.data.text import WJ
    from ui.messages import md

    # every Markdown character escaped, and a word joiner after ':' so no link or colour directive can form
    assert md("Red *bold* [x](http://y) <b>$1$ :red[x]") == (
        rf"Red \*bold\* \[x\](http\:{WJ}//y) \<b\>\$1\$ \:{WJ}red\[x\]")
    assert md("two\nlines") == "two lines"
