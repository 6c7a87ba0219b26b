"""End to end: the real ``streamlit run app.py`` server driven by Debian Chromium (Playwright, no downloaded
browser). Uploads a sample shopper photo, checks the first result is its product, saves docs/screenshot.png."""

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

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "screenshot.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


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
def server(sample_index):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (run .ci/install-browser)")
    pytest.importorskip("playwright.sync_api")
    from core.index.workspace import index_dir_for

    d = index_dir_for(SAMPLE, sample_index.spec)  # reuse the session's index: the server does not rebuild it
    if not (d / "CURRENT").exists():
        d.mkdir(parents=True, exist_ok=True)
        shutil.copytree(sample_index.gen, d / sample_index.gen.name)
        (d / "CURRENT").write_text(sample_index.gen.name)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def test_upload_photo_first_result_is_its_product(server, sample_index, embedder):
    from playwright.sync_api import expect, sync_playwright

    photo, pid = _found_query(sample_index, embedder)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, timeout=120_000)
        page.get_by_text("Upload a photo").click(timeout=180_000)
        page.locator("input[type=file]").first.set_input_files(str(photo), timeout=60_000)
        first = page.get_by_text(re.compile(r"^#1 · "))
        expect(first).to_contain_text(f"#1 · {pid} ·", timeout=120_000)
        expect(page.get_by_text(photo.name).first).to_be_visible(timeout=30_000)
        assert page.locator("text=Traceback").count() == 0
        page.wait_for_timeout(1500)  # let thumbnails finish loading before the screenshot
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shot = SCREENSHOT.with_suffix(".tmp.png")
        page.screenshot(path=str(shot), full_page=False)
        browser.close()
    from PIL import Image

    img = Image.open(shot)
    img = img.convert("RGB").quantize(colors=128)  # keep the committed screenshot small
    img.save(SCREENSHOT, optimize=True)
    shot.unlink()
