"""End to end: the real ``streamlit run app.py`` server driven by Debian Chromium (Playwright, no downloaded
browser). Uploads a sample shopper photo and checks the first result is its product; picks another catalog and
an example photo, switches pages from the sidebar and checks each shows the same catalog and query; opens a link
with a cropped query. Screenshots go to ``$VPS_SCREENSHOTS`` (default: a temporary folder), never over tracked
files; copy ``search.png`` to ``docs/screenshot.png`` by hand to refresh the README's picture."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.embedding.query import embed_query
from tests.test_app_state import mini_catalog

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
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


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory):
    """The app on its own cache: the session's sample index (not rebuilt) and an imported dataset ``mini``."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (run .ci/install-browser)")
    pytest.importorskip("playwright.sync_api")
    from core.index.workspace import index_dir_for

    cache = tmp_path_factory.mktemp("e2e-cache")
    env = {**os.environ, "VPS_CACHE": str(cache)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VPS_CACHE", str(cache))
        d = index_dir_for(SAMPLE, sample_index.spec)
    d.mkdir(parents=True)
    shutil.copytree(sample_index.gen, d / sample_index.gen.name)
    (d / "CURRENT").write_text(sample_index.gen.name)
    mini_catalog(cache / "imports" / "mini" / "catalog")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {proc.stdout.read()[-2000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def _shot(page, path: Path) -> None:
    page.wait_for_timeout(1500)  # let images finish loading
    page.screenshot(path=str(path), full_page=False)
    assert page.locator("text=Traceback").count() == 0


def _choose(page, select, option: str) -> None:
    """Pick ``option`` in a Streamlit selectbox."""
    select.click()
    page.get_by_role("option", name=option, exact=True).click()


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

    sidebar.get_by_role("link", name="app", exact=True).click()  # the search page (app.py)
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
