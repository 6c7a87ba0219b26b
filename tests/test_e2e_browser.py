"""End to end: the real ``streamlit run app.py`` server driven by Debian Chromium (Playwright, no downloaded
browser). Uploads a sample shopper photo and checks the first result is its product; picks another catalog and
an example photo, switches pages from the sidebar and checks each shows the same catalog and query; opens a link
with a cropped query. Screenshots go to ``$VPS_SCREENSHOTS`` (default: a temporary folder), never over tracked
files; copy ``search.png`` to ``docs/screenshot.png`` by hand to refresh the README's picture."""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.embedding.query import embed_query
from scripts.chromium import ARGS, CHROMIUM
from tests.helpers import cache_with_index
from tests.test_app_state import mini_catalog

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"
WAIT = 300_000  # ms: the first search of a catalog builds its index and attribute filters (slow on 2 CPUs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _found_query(index, embedder) -> tuple[Path, str]:
    """A sample query whose product the engine ranks first (computed, not hard-coded)."""
    with open(SAMPLE / "queries.csv", newline="") as f:
        for row in csv.DictReader(f):
            path = SAMPLE / row["image"]
            if index.search(embed_query(embedder, path).vector, 1)[0][0].product_id == row["product_id"]:
                return path, row["product_id"]
    pytest.fail("the engine ranks no sample query's product first")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("VPS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _serve(cache: Path, env: dict[str, str]):
    """``streamlit run app.py`` on a free port with ``env``; yields its URL, stops it afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, "VPS_CACHE": str(cache), **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {proc.stdout.read()[-2000:]}")
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _need_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (run .ci/install-browser)")
    pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory):
    """The app on its own cache: the session's sample index (not rebuilt) and an imported dataset ``mini``."""
    _need_browser()
    cache = tmp_path_factory.mktemp("e2e-cache")
    cache_with_index(cache, SAMPLE, sample_index)
    mini_catalog(cache / "imports" / "mini" / "catalog")
    yield from _serve(cache, {"VPS_MODE": "local"})


@pytest.fixture(scope="module")
def served_server(tmp_path_factory):
    """The app served (``VPS_MODE=served``) with one allowed catalog whose titles are hostile."""
    _need_browser()
    from tests.test_served import hostile_catalog

    base = tmp_path_factory.mktemp("e2e-served")
    hostile_catalog(base / "roots" / "shop")
    yield from _serve(base / "cache", {"VPS_MODE": "served", "VPS_CATALOG_ROOTS": str(base / "roots")})


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)  # actions on a page that a rerun is redrawing, on a busy machine
        yield pg
        browser.close()


def _shot(page, path: Path) -> None:
    page.wait_for_timeout(1500)  # let images finish loading
    page.screenshot(path=str(path), full_page=False)
    assert page.locator("text=Traceback").count() == 0


def _settled(page) -> None:
    """Wait until the app's script has finished running (no "Running..." status), as a person waits for a page
    to finish loading before they open a list: a rerun re-renders the page and closes an open list."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=WAIT)


def _filter_category(page, category: str) -> None:
    """Set the sidebar's Category filter to ``category`` (once the rerun that replaced the filter has removed the
    old copy) and wait for the results to say so."""
    from playwright.sync_api import expect

    category_filter = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").filter(has_text="Category")
    expect(category_filter).to_have_count(1, timeout=WAIT)
    category_filter.click()
    page.get_by_role("option", name=category, exact=True).click()
    page.keyboard.press("Escape")
    expect(page.get_by_text(f"category={category}", exact=False).first).to_be_visible(timeout=WAIT)


def _choose(page, select, option: str) -> None:
    """Pick ``option`` in a Streamlit selectbox, once the page has settled (a second try if a rerun that started
    meanwhile, such as the re-ranking once the filters are ready, closed the list under the click). While a
    rerun replaces a widget, the old one can stay on the page beside the new one until the run ends: the list
    is opened once only one is left."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    for attempt in range(2):
        _settled(page)
        expect(select).to_have_count(1, timeout=WAIT)
        select.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=30_000 if attempt else 10_000)
            return
        except PlaywrightTimeout:
            if attempt:
                raise
            page.keyboard.press("Escape")


def test_a_fresh_server_opened_by_a_page_link_shows_the_apps_pages(page, tmp_path):
    """The first visit of a just-started server is a link to a page: the sidebar lists the app's pages (not
    Streamlit's own list of ``pages/`` with an "app" entry)."""
    from playwright.sync_api import expect

    _need_browser()
    for url in _serve(tmp_path / "cache", {"VPS_MODE": "local"}):
        page.goto(f"{url}/Catalog", timeout=120_000)
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav.get_by_role("link", name="Search", exact=True)).to_be_visible(timeout=60_000)
        expect(nav.get_by_role("link", name="Classifier vs neighbours")).to_be_visible(timeout=60_000)
        expect(nav.get_by_role("link", name="app", exact=True)).to_have_count(0, timeout=60_000)
        expect(nav.get_by_role("link", name="Catalog", exact=True)).to_have_attribute("aria-current", "page",
                                                                                     timeout=WAIT)


def test_upload_photo_first_result_is_its_product(server, page, shots, sample_index, embedder):
    from playwright.sync_api import expect

    photo, pid = _found_query(sample_index, embedder)
    page.goto(server, timeout=120_000)
    page.get_by_text("Upload a photo").click(timeout=WAIT)
    page.locator("input[type=file]").first.set_input_files(str(photo), timeout=60_000)
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_contain_text(f"#1 · {pid} ·", timeout=WAIT)
    expect(page.get_by_text(photo.name).first).to_be_visible(timeout=30_000)
    _shot(page, shots / "search.png")


def test_pages_share_the_catalog_and_query(server, page, shots):
    from playwright.sync_api import expect

    example = sorted((SAMPLE / "queries").iterdir())[::10][2].name  # in the mini catalog too
    page.goto(server, timeout=120_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_be_visible(timeout=WAIT)
    _choose(page, sidebar.get_by_role("combobox", name="Catalog"), "Dataset: mini")
    expect(page.get_by_text("12 products", exact=False).first).to_be_visible(timeout=WAIT)
    _choose(page, page.get_by_role("combobox", name="Example shopper photo"), example)
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_be_visible(timeout=WAIT)
    expect(page).to_have_url(re.compile(rf"catalog=mini.*q={re.escape(example)}"), timeout=30_000)
    first = page.get_by_text(re.compile(r"^#1 · ")).first
    expect(first).to_contain_text(example.split("_")[1].split(".")[0], timeout=WAIT)  # its product comes first
    pid = first.inner_text().split(" · ")[1]
    _shot(page, shots / "1-search-mini.png")

    sidebar.get_by_role("link", name="Catalog").click()
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible(timeout=WAIT)
    expect(sidebar.get_by_role("combobox", name="Catalog")).to_have_value("Dataset: mini", timeout=WAIT)
    expect(page.get_by_test_id("stMetric").first).to_contain_text("12", timeout=WAIT)
    expect(page).to_have_url(re.compile(r"catalog=mini"), timeout=30_000)
    _shot(page, shots / "2-catalog.png")

    sidebar.get_by_role("link", name="Why these results").click()
    expect(page.get_by_role("heading", name="Why these results")).to_be_visible(timeout=WAIT)
    expect(sidebar.get_by_role("combobox", name="Catalog")).to_have_value("Dataset: mini", timeout=WAIT)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("combobox", name="Example shopper photo")).to_have_value(example, timeout=WAIT)
    expect(main.get_by_text("Results", exact=True)).to_be_visible(timeout=WAIT)
    expect(main.get_by_text(re.compile(rf"^#1 {pid} · ")).first).to_be_visible(timeout=WAIT)  # the same ranking
    _shot(page, shots / "3-why.png")

    sidebar.get_by_role("link", name="Search", exact=True).click()  # the search page, named (not "app")
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_be_visible(timeout=WAIT)
    expect(sidebar.get_by_role("combobox", name="Catalog")).to_have_value("Dataset: mini", timeout=WAIT)
    expect(page.get_by_role("combobox", name="Example shopper photo")).to_have_value(example, timeout=WAIT)
    _shot(page, shots / "4-search-again.png")


def test_a_link_reopens_a_cropped_query(server, page, shots):
    from playwright.sync_api import expect

    example = sorted((SAMPLE / "queries").iterdir())[::10][3].name
    page.goto(f"{server}/Why_these_results?catalog=mini&q={example}&crop=20,10,80,90", timeout=120_000)
    expect(page.get_by_role("heading", name="Why these results")).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("combobox", name="Catalog")).to_have_value("Dataset: mini", timeout=WAIT)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("combobox", name="Example shopper photo")).to_have_value(example, timeout=WAIT)
    expect(main.get_by_text("searching the outlined region", exact=False)).to_be_visible(timeout=WAIT)
    expect(main.get_by_text("Results", exact=True)).to_be_visible(timeout=WAIT)
    _shot(page, shots / "5-why-from-link.png")


def _card(page, rank: int):
    """The bordered result card whose caption starts ``#<rank> · ``."""
    return page.get_by_test_id("stVerticalBlock").filter(
        has=page.get_by_text(re.compile(rf"^#{rank} · "))).filter(has=page.get_by_role("button", name="More")).last


def _hover_a_point(page) -> str:
    """Move the mouse onto the map's first point (real mouse events) and return the product id the picture
    panel then shows, after its picture has loaded."""
    from playwright.sync_api import expect

    iframe = page.locator("iframe[src*='hover_map']").first
    expect(iframe).to_be_visible(timeout=WAIT)
    iframe.scroll_into_view_if_needed()  # mouse events only reach what is in the viewport
    frame = iframe.element_handle().content_frame()
    frame.wait_for_function("window.hoverMap && window.hoverMap._fullLayout && window.hoverMap.data.length",
                            timeout=WAIT)
    pos = frame.evaluate("""() => { const gd = window.hoverMap, L = gd._fullLayout, t = gd.data[0];
        const r = gd.getBoundingClientRect();
        return {x: r.left + L._size.l + L.xaxis.l2p(t.x[0]), y: r.top + L._size.t + L.yaxis.l2p(t.y[0])}; }""")
    box = iframe.bounding_box()
    assert 0 <= box["y"] + pos["y"] < page.viewport_size["height"], (box, pos)
    for dx in (0, 1, -1, 2):  # a few pixels of jitter: the first event may only enter the plot
        page.mouse.move(box["x"] + pos["x"] + dx, box["y"] + pos["y"])
        page.wait_for_timeout(300)
    frame.wait_for_function("document.getElementById('panel').dataset.shown && "
                            "document.getElementById('pic').complete && "
                            "document.getElementById('pic').naturalWidth > 0", timeout=30_000)
    return frame.evaluate("document.getElementById('panel').dataset.shown")


def _slide(page, label: str, key: str, values: list[str], param: str) -> None:
    """Move the sidebar slider ``label`` one keyboard step (``key``: ArrowLeft / ArrowRight) at a time through
    ``values``. Each step waits until the server has taken the value (the link's ``param`` names it): the slider
    shows a pressed value at once, and the running indicator appears only after a moment, so neither says that
    the rerun is over. A key pressed while the slider is redrawn can be lost: it is pressed again, never twice."""
    from playwright.sync_api import expect

    knob = page.get_by_test_id("stSidebar").get_by_test_id("stSlider").filter(has_text=label).get_by_role(
        "slider").first
    for value in values:
        taken = re.compile(rf"[?&]{re.escape(param)}={re.escape(value)}(&|$)")
        for _ in range(5):
            _settled(page)
            if knob.input_value(timeout=WAIT) != value:
                knob.focus(timeout=WAIT)
                knob.press(key, timeout=WAIT)
            try:
                expect(page).to_have_url(taken, timeout=30_000)
                break
            except AssertionError:
                continue
        expect(page).to_have_url(taken, timeout=WAIT)
        expect(knob).to_have_value(value, timeout=WAIT)
    _settled(page)


def test_a_link_keeps_the_whole_view_and_why_follows_the_thumbs(server, page, shots, sample_index, embedder):
    """Filters, number of results, minimum similarity and a thumb survive a reload of the page's link; "Why
    these results" then shows the same results, the liked product pinned at #1."""
    from playwright.sync_api import expect

    photo, pid = _found_query(sample_index, embedder)
    category = sample_index.products[pid]["category"]
    page.goto(f"{server}/?catalog=sample&q={photo.name}", timeout=120_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_contain_text(f"#1 · {pid} ·", timeout=WAIT)
    _settled(page)
    _filter_category(page, category)
    _settled(page)
    _slide(page, "How many products", "ArrowLeft", ["9", "8", "7"], "k")
    expect(page.get_by_text("7 product(s)", exact=False).first).to_be_visible(timeout=WAIT)
    _settled(page)
    _slide(page, "Minimum similarity", "ArrowRight", ["0.01", "0.02", "0.03", "0.04", "0.05"], "min")
    expect(page).to_have_url(re.compile(r"min=0\.05"), timeout=WAIT)
    _settled(page)
    third = _card(page, 3)
    liked = third.get_by_text(re.compile(r"^#3 · ")).inner_text().split(" · ")[1]
    third.get_by_role("button", name="More").click()
    expect(page.get_by_text(re.compile(rf"^#1 · {re.escape(liked)} · .*liked, pinned"))).to_be_visible(timeout=WAIT)
    expect(page).to_have_url(re.compile(rf"like={re.escape(liked)}"), timeout=WAIT)
    url = page.url
    assert all(part in url for part in ("k=7", "min=0.05", f"f.category={category}", f"q={photo.name}")), url

    page.goto(url, timeout=120_000)  # the link, opened again: a new session
    expect(page.get_by_text(re.compile(rf"^#1 · {re.escape(liked)} · .*liked, pinned"))).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("7 product(s)", exact=False).first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(f"category={category}", exact=False).first).to_be_visible(timeout=WAIT)
    knob = sidebar.get_by_test_id("stSlider").filter(has_text="Minimum similarity").get_by_role("slider").first
    expect(knob).to_have_value("0.05", timeout=WAIT)
    expect(sidebar.get_by_test_id("stMultiSelect").filter(has_text="Category")).to_contain_text(category, timeout=WAIT)
    pressed = page.locator("[data-testid=stBaseButton-primary]:visible").filter(has_text="More")
    expect(pressed).to_have_count(1, timeout=WAIT)
    _shot(page, shots / "12-link-view.png")

    sidebar.get_by_role("link", name="Why these results").click()
    main = page.get_by_test_id("stMain")
    expect(page.get_by_role("heading", name="Why these results")).to_be_visible(timeout=WAIT)
    expect(main.get_by_text(re.compile(rf"^#1 {re.escape(liked)} · .*liked, pinned"))).to_be_visible(timeout=WAIT)
    expect(main.get_by_text(re.compile(r"^#7 "))).to_have_count(1, timeout=WAIT)  # the same 7 results
    expect(main.get_by_text(re.compile(r"^#8 "))).to_have_count(0, timeout=WAIT)
    _shot(page, shots / "13-why-after-thumb.png")


def test_three_users_paths(server, page, shots, sample_index, embedder):
    """A shopper (upload, crop, filter, feedback), an educator (map with the query, hovered pictures; the
    classifier page) and a retailer (add a product, find it first, remove it), in one real browser."""
    from playwright.sync_api import expect

    photo, pid = _found_query(sample_index, embedder)
    category = sample_index.products[pid]["category"]
    page.goto(server, timeout=120_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("link", name="Search", exact=True)).to_be_visible(timeout=WAIT)
    page.get_by_text("Upload a photo").click(timeout=WAIT)
    page.locator("input[type=file]").first.set_input_files(str(photo), timeout=60_000)
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_contain_text(f"#1 · {pid} ·", timeout=WAIT)
    page.get_by_text("Crop to the product").click()
    edge = page.get_by_test_id("stSlider").filter(has_text="Left / right edge").get_by_role("slider").first
    edge.focus()
    for _ in range(5):
        edge.press("ArrowRight")
    expect(page.get_by_text("searching the outlined region", exact=False)).to_be_visible(timeout=WAIT)
    _settled(page)  # the crop's reruns are over: the sidebar's filters are drawn once
    _filter_category(page, category)
    _settled(page)
    third = _card(page, 3)
    liked = third.get_by_text(re.compile(r"^#3 · ")).inner_text().split(" · ")[1]
    third.get_by_role("button", name="More").click()
    expect(page.get_by_text(re.compile(rf"^#1 · {re.escape(liked)} · .*liked, pinned"))).to_be_visible(timeout=WAIT)
    pressed = page.locator("[data-testid=stBaseButton-primary]:visible").filter(has_text="More")
    expect(pressed).to_have_count(1, timeout=WAIT)
    expect(page.get_by_text("Score bars, one scale for all cards", exact=False)).to_be_visible(timeout=WAIT)
    _shot(page, shots / "6-shopper.png")

    sidebar.get_by_role("link", name="Embedding map").click()
    expect(page.get_by_role("heading", name="Embedding map")).to_be_visible(timeout=WAIT)
    page.get_by_text("Place the query on the map").click(timeout=WAIT)  # after the first UMAP projection
    expect(page.get_by_text("Nearest to the query refined by feedback")).to_be_visible(timeout=WAIT)
    shown = _hover_a_point(page)
    assert shown in sample_index.products  # the hovered product's picture and title, without a click
    _shot(page, shots / "7-map-hover.png")

    sidebar.get_by_role("link", name="Classifier vs neighbours").click()
    expect(page.get_by_role("heading", name="Classifier versus nearest neighbour")).to_be_visible(timeout=WAIT)
    expect(page.get_by_test_id("stMetric").filter(has_text="Classifier").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("The same photos on the map")).to_be_visible(timeout=WAIT)
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=WAIT)
    page.get_by_test_id("stPlotlyChart").first.scroll_into_view_if_needed()
    _shot(page, shots / "8-classifier.png")

    new_photo = SAMPLE / "images" / "P0201.jpg"  # a sample product the mini catalog does not have
    _choose(page, sidebar.get_by_role("combobox", name="Catalog"), "Dataset: mini")
    sidebar.get_by_role("link", name="Catalog").click()
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible(timeout=WAIT)
    page.get_by_role("tab", name="Add a product").click(timeout=WAIT)
    form = page.get_by_test_id("stForm")
    form.locator("input[type=file]").set_input_files(str(new_photo))
    form.get_by_role("textbox", name="Product code (leave empty for a new one)").fill("E2E-1")
    form.get_by_label("Title").fill("E2E test lamp")
    form.get_by_label("Category").fill(category)  # the shopper's filter is still on
    form.get_by_role("button", name="Add to the catalog").click()
    expect(page.get_by_text("Added E2E-1 with 1 image(s)", exact=False)).to_be_visible(timeout=WAIT)
    _shot(page, shots / "9-catalog-added.png")
    sidebar.get_by_role("link", name="Search", exact=True).click()
    page.get_by_text("Upload a photo").click(timeout=WAIT)
    page.locator("input[type=file]").first.set_input_files(str(new_photo), timeout=60_000)
    expect(page.get_by_text(re.compile(r"^#1 · E2E-1 · "))).to_be_visible(timeout=WAIT)  # found first
    _shot(page, shots / "10-search-finds-new.png")
    sidebar.get_by_role("link", name="Catalog").click()
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible(timeout=WAIT)
    _settled(page)  # the page's run is over: a rerun would redraw the list and drop the pick under the click
    page.get_by_role("tab", name="Remove / tidy up").click(timeout=WAIT)
    page.get_by_test_id("stMultiSelect").filter(has_text="Products to remove").click()
    page.get_by_role("option", name=re.compile(r"^E2E-1")).click()
    page.keyboard.press("Escape")
    _settled(page)  # the pick's rerun enables the button
    page.get_by_role("button", name="Remove from the catalog").click(timeout=WAIT)
    expect(page.get_by_text("Removed E2E-1", exact=False)).to_be_visible(timeout=WAIT)
    expect(page.get_by_test_id("stMetric").first).to_contain_text("12", timeout=WAIT)


def test_several_products_in_one_photo(server, page, shots, sample_index, embedder, tmp_path):
    """A shelf photo with several sample products: the page numbers the products it finds; clicking inside a box
    searches that product (the same results the engine gives for that box), and its chip shows it chosen."""
    from playwright.sync_api import expect

    from core.data.scenes import read_scenes, write_scenes
    from core.embedding.query import embed_query
    from core.search.engine import Searcher, SearchOptions
    from core.search.regions import RegionSearcher
    from ui.regions import percent_box
    from ui.state import box_crop

    scene = read_scenes(write_scenes(SAMPLE, tmp_path / "scenes", seed=7, n=1))[0]
    searcher = Searcher(sample_index, embedder)
    found = RegionSearcher(searcher).search(scene.image, SearchOptions.make(k=1))
    assert len(found.regions) >= 2
    size = found.size
    pick = 1  # the second product found
    box = found.regions[pick].box
    q = embed_query(embedder, scene.image, crop=box_crop(percent_box(box, size)), letterboxed=True)
    expected = searcher.search(q, SearchOptions.make(k=10, rank="static")).hits[0].product_id
    first = found.regions[0].box
    q = embed_query(embedder, scene.image, crop=box_crop(percent_box(first, size)), letterboxed=True)
    expected_first = searcher.search(q, SearchOptions.make(k=10, rank="static")).hits[0].product_id

    page.goto(server, timeout=120_000)
    page.get_by_text("Upload a photo").click(timeout=WAIT)
    page.locator("input[type=file]").first.set_input_files(str(scene.image), timeout=60_000)
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_be_visible(timeout=WAIT)
    page.get_by_text("Find each product").click()
    expect(page.get_by_text(f"{len(found.regions)} product(s) found", exact=False)).to_be_visible(timeout=WAIT)
    picture = page.frame_locator("iframe[title*=streamlit_image_coordinates]").locator("#image")
    expect(picture).to_be_visible(timeout=WAIT)
    shown = picture.bounding_box()
    s = shown["width"] / size[0]
    picture.click(position={"x": (box[0] + box[2]) / 2 * s, "y": (box[1] + box[3]) / 2 * s})
    expect(page.get_by_text("searching the outlined region", exact=False)).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_contain_text(f"#1 · {expected} ·", timeout=WAIT)
    chips = page.get_by_role("radiogroup", name=re.compile("product\\(s\\) found"))
    expect(chips.get_by_role("radio", name=re.compile(rf"^{pick + 1} · "))).to_be_checked(timeout=WAIT)
    _shot(page, shots / "11-regions.png")
    chips.get_by_role("radio", name=re.compile(r"^1 · ")).click()  # the chip of the first product
    expect(chips.get_by_role("radio", name=re.compile(r"^1 · "))).to_be_checked(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_contain_text(f"#1 · {expected_first} ·", timeout=WAIT)


def test_served_hostile_titles_stay_text(served_server, page, shots):
    """Served: a title written as Markdown or HTML is shown as typed; the browser fetches nothing it names and
    runs no script."""
    from playwright.sync_api import expect

    from core.data.text import WJ
    from tests.test_served import HOSTILE

    fetched, dialogs = [], []
    page.on("request", lambda r: fetched.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{served_server}/Catalog", timeout=120_000)  # a fresh server's first visit: a page's link
    nav = page.get_by_test_id("stSidebarNav")
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible(timeout=WAIT)
    expect(nav.get_by_role("link", name="Search", exact=True)).to_be_visible(timeout=WAIT)
    assert nav.get_by_role("link", name="app", exact=True).count() == 0  # named pages, never "app"
    page.get_by_role("tab", name="Add a product").click()
    expect(page.get_by_text("needs an administrator", exact=False).first).to_be_visible(timeout=WAIT)  # no editing
    assert page.locator("input[type=file]").count() == 0
    nav.get_by_role("link", name="Search", exact=True).click()
    expect(page.get_by_text(re.compile(r"^#1 · "))).to_be_visible(timeout=WAIT)
    # the title, as typed: the page may hold invisible word joiners (U+2060) after ':' so no link can form
    as_typed = re.compile("^" + f"{WJ}?".join(re.escape(c) for c in HOSTILE[0]) + "$")
    expect(page.get_by_text(as_typed).first).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("combobox", name="Catalog")).to_have_value("Dataset: shop", timeout=WAIT)
    assert page.get_by_text("Other folder…").count() == 0
    _shot(page, shots / "11-served-hostile.png")
    page.get_by_test_id("stSidebar").get_by_role("link", name="Embedding map").click()
    expect(page.get_by_role("heading", name="Embedding map")).to_be_visible(timeout=WAIT)
    _hover_a_point(page)
    page.wait_for_timeout(1000)
    assert not [u for u in fetched if u.startswith(("http://x/", "http://x:"))] and not dialogs
    assert all(u.startswith(("http://127.0.0.1", "data:", "blob:")) for u in fetched), \
        [u for u in fetched if not u.startswith("http://127.0.0.1")][:5]
