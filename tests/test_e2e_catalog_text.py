"""Catalog text as text in a real browser: hostile strings escaped by ``core.data.text.markdown`` and rendered by
Streamlit's own frontend (Markdown, captions, button labels) in headless Chromium form no link, no emoji or
icon, and are not reordered; the same text unescaped does form a link and an emoji (the check can fail)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.chromium import ARGS, CHROMIUM

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ["see https://evil.example/x, www.evil.example and a@evil.example", ":smile: :material/home: :red[alert]",
           "live \u202egpj.exe", "HTTP://X.Y mailto:a@b.co", "- item [t](http://x/y) <b>b</b>"]
SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from core.data.text import markdown as md
for i, s in enumerate({HOSTILE!r}):
    st.markdown(f"**{{md(s)}}**")
    st.caption(md(s))
    st.button(md(s), key=f"b{{i}}")
st.markdown("CONTROL https://control.example :smile:")
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_escaped_catalog_text_forms_no_link_emoji_or_icon_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    (tmp_path / "app.py").write_text(SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(tmp_path / "app.py"), "--server.headless",
                             "true", "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            page = browser.new_page()
            deadline = time.time() + 120
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}", timeout=10_000)
                    break
                except sync_api.Error:
                    if time.time() > deadline:
                        raise
                    time.sleep(1)
            page.get_by_text("CONTROL").wait_for(timeout=120_000)
            # the emoji plugin loads lazily: wait until it has drawn the control line's emoji (the last element,
            # so every line above it has been through the plugin too), however long a busy machine takes
            page.wait_for_function("document.body.innerText.includes('\\u{1F604}')", timeout=120_000)
            links = page.eval_on_selector_all("[data-testid=stMarkdownContainer] a", "els => els.map(e => e.href)")
            icons = page.eval_on_selector_all("[data-testid=stMarkdownContainer] [data-testid=stIconMaterial]",
                                              "els => els.length")
            text = page.inner_text("body")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)
    assert links == ["https://control.example/"], links  # the unescaped control line forms the only link
    assert text.count("\U0001f604") == 1 and icons == 0  # its emoji is the only one; no icon
    assert text.count("live gpj.exe") == 3 and "\u202e" not in text
    assert text.count(":\u2060smile:") == 3 and text.count("[t](http:\u2060//x/y)") == 3
