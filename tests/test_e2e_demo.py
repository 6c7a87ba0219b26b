"""End to end, issue 24's "done when": the real ``streamlit run app.py`` server (only the sample's index reused;
the demo is indexed from scratch, as on a fresh clone) driven by Debian Chromium. From the app's default start a
person picks the real-photo demo, searches its first example photo, reads why the pretrained network misses it,
switches to the network trained for this catalog (the photo's product comes first), switches back and forth, and
opens Classifier vs neighbours: a "classifier right, neighbour wrong" case with pictures, and how many of those the
trained head fixes. Screenshots go to ``$VPS_SCREENSHOTS`` (default: a temporary folder)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from core.config.paths import DEMO_ROOT
from tests.helpers import cache_with_index
from tests.test_e2e_browser import ARGS, CHROMIUM, SAMPLE, WAIT, _choose, _need_browser, _serve, _settled, _shot

pytestmark = pytest.mark.e2e

DEMO = "Grocery shop photos (real)"
TRAINED, PRETRAINED = "Trained for this catalog", "Pretrained"


def first_example() -> tuple[str, str]:
    """The first example photo the demo offers and its product (the first row of queries-examples.csv)."""
    with open(DEMO_ROOT / "queries-examples.csv", newline="") as f:
        row = next(csv.DictReader(f))
    return row["image"].rsplit("/", 1)[-1], row["product_id"]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("VPS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory):
    """The app on a cache holding only the sample's index (the default start is not rebuilt)."""
    _need_browser()
    cache = tmp_path_factory.mktemp("e2e-demo-cache")
    cache_with_index(cache, SAMPLE, sample_index)
    yield from _serve(cache, {"VPS_MODE": "local"})


def first_result(pg):
    return pg.get_by_test_id("stMain").get_by_text(re.compile(r"^#1 · ")).first


@pytest.mark.timeout(1500)
def test_the_demo_before_and_after_one_click_apart(server, page, shots):
    from playwright.sync_api import expect

    name, product = first_example()
    title = product.replace("-", " ")
    page.goto(server, timeout=120_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(first_result(page)).to_be_visible(timeout=WAIT)  # the default start: the sample, searched
    _choose(page, sidebar.get_by_role("combobox", name="Catalog"), DEMO)
    expect(page.get_by_text("81 products", exact=False).first).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("combobox", name="Example shopper photo")).to_have_value(name, timeout=WAIT)
    expect(sidebar.get_by_role("radio", name=PRETRAINED)).to_be_checked(timeout=WAIT)

    note = page.get_by_text(f"This photo is {title}; the pretrained network puts", exact=False)
    expect(note).to_be_visible(timeout=WAIT)  # the miss, explained with its fix
    expect(page.get_by_text("The network trained for this catalog finds it", exact=False)).to_be_visible(timeout=WAIT)
    expect(first_result(page)).not_to_contain_text(f"· {product} ·", timeout=WAIT)
    _settled(page)
    _shot(page, shots / "demo-1-pretrained-miss.png")

    page.get_by_role("button", name="Switch to the trained network").click()
    expect(first_result(page)).to_contain_text(f"#1 · {product} ·", timeout=WAIT)  # found, first
    expect(sidebar.get_by_role("radio", name=TRAINED)).to_be_checked(timeout=WAIT)
    expect(note).to_have_count(0, timeout=WAIT)
    expect(page).to_have_url(re.compile(r"catalog=demo.*spec=trained"), timeout=30_000)  # its name, no server path
    _settled(page)
    page.get_by_role("heading", name="Visual product search").scroll_into_view_if_needed()  # the click scrolled
    _shot(page, shots / "demo-2-trained-found.png")

    sidebar.get_by_text(PRETRAINED, exact=True).click()  # before ...
    expect(sidebar.get_by_role("radio", name=PRETRAINED)).to_be_checked(timeout=WAIT)
    expect(note).to_be_visible(timeout=WAIT)
    expect(first_result(page)).not_to_contain_text(f"· {product} ·", timeout=WAIT)
    sidebar.get_by_text(TRAINED, exact=True).click()  # ... and after, one click apart
    expect(first_result(page)).to_contain_text(f"#1 · {product} ·", timeout=WAIT)
    _settled(page)


@pytest.mark.timeout(1500)
def test_classifier_page_shows_the_argument_on_the_demo(server, page, shots):
    """Classifier vs neighbours on the demo with the trained network: a "classifier right, neighbour wrong" case
    with pictures, and a count of those the trained head fixes (the page's contract, built in issue 24)."""
    from playwright.sync_api import expect

    page.goto(f"{server}/?catalog=demo", timeout=120_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("combobox", name="Catalog")).to_have_value(DEMO, timeout=WAIT)
    sidebar.get_by_text(TRAINED, exact=True).click()
    expect(first_result(page)).to_be_visible(timeout=WAIT)
    _settled(page)
    sidebar.get_by_role("link", name="Classifier vs neighbours").click()
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("Classifier right, neighbour wrong", exact=False).first).to_be_visible(timeout=WAIT)
    expect(main.get_by_text(re.compile(r"the trained head fixes \d+")).first).to_be_visible(timeout=WAIT)
    expect(main.get_by_test_id("stImage").first).to_be_visible(timeout=WAIT)
    expect(sidebar.get_by_role("radio", name=TRAINED)).to_be_checked(timeout=WAIT)
    _settled(page)
    _shot(page, shots / "demo-3-classifier.png")
