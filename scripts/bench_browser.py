"""Real-browser latency of the app, as a person meets it: ``streamlit run app.py`` on 127.0.0.1 (a free port) with
a fresh cache, driven by headless Chromium (Playwright), through the rows of issue 26's table. For each step: the
seconds until the page first shows something (never blank), until the first result, until it settles, and the
longest stretch in which nothing on the page changed (progress that moves: the goal is 2 s at most).

The first paint is read from the browser's own clock (from the start of the navigation to the first frame drawn
with the page's title), with the steps before it (:func:`paint`); the other figures from the page read every 0.1 s.
Each page opens in a browser of its own (no cached files: a person who never opened the app), the open after a
server restart too (``--restarts N``: N restarts, each figure's median).

Prints one JSON object on its last line (rows: step, figure, seconds, goal), and saves a screenshot every second
of the first 10 s of the first open under ``--shots``. Talks only to 127.0.0.1; the server is always stopped.

    python scripts/bench_browser.py --shots /tmp/first-open
    python scripts/bench_browser.py --only-open --restarts 5   # the first paint and first result only
    python -m core bench --sections browser   # the same, as a benchmark table
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pty
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``scripts.chromium`` beside it, the engine for the scene photo
    sys.path.insert(0, str(ROOT))
from scripts.chromium import ARGS, CHROMIUM  # noqa: E402

IDLE = "document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state') === 'notRunning'"
#: every change of the page's content, timed (performance.now(), ms), from the first byte of the document on
WATCH = """(() => { window.__changes = [];
  const note = () => window.__changes.push(performance.now());
  new MutationObserver(note).observe(document, {subtree: true, childList: true, characterData: true,
                                                attributes: true, attributeFilter: ['value', 'aria-valuenow']});
})();"""
#: the first paint, on the browser's own clock (performance.now(), ms from the start of the navigation): when the
#: page's title (its frame's first element) enters the page and the first frame after that is drawn
PAINT = r"""(() => { const p = window.__paint = {title: null, painted: null};
  const seen = new MutationObserver(() => {
    if (p.title !== null || !document.querySelector('[data-testid=stMain] h1')) return;
    p.title = performance.now(); seen.disconnect();
    requestAnimationFrame(() => setTimeout(() => { p.painted = performance.now(); }));  // after that frame
  });
  seen.observe(document, {subtree: true, childList: true});
})();"""
#: the parts of a first paint (``paint``), each in seconds from the start of the navigation
PAINT_PARTS = tuple(f"paint · {part}" for part in ("HTML received", "page scripts run", "websocket open",
                                                   "script started", "title sent", "title in the page"))
VIEWPORT = {"width": 1400, "height": 1000}
RESULT = re.compile(r"^#1 · ")
PREPARING = "Nearest products by similarity for now"
#: the line under the page's title names the network in use (ui/sidebar.py ``describe``); the same words in a note
#: elsewhere on the page (the first example's) must not count
TRAINED = re.compile(r"products · (network trained for this catalog|Trained head: )")
GOALS = {  # step -> (figure -> goal in seconds)
    "first open, fresh cache": {"first paint": 1.0, "first result": 10.0, "longest still": 2.0},
    "open after a server restart": {"first paint": 1.0, "first result": 3.0},
    "Find each product, first use": {"boxes shown": 10.0, "longest still": 2.0},
    "Classifier vs neighbours": {"settled": 10.0, "longest still": 2.0},
    "switch the embedder to a trained head": {"settled": 20.0, "longest still": 2.0},
    "CLI: first search on a new index": {"first line": 1.0},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` (local mode) on a free port with ``cache``; stopped on exit."""

    def __init__(self, cache: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(self.port), "--browser.gatherUsageStats", "false"], cwd=ROOT,
            env={**os.environ, "VPS_CACHE": str(cache), "VPS_MODE": "local"}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("streamlit did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def longest_still(page, start_ms: float, end_ms: float) -> float:
    """The longest stretch (s) between ``start_ms`` and ``end_ms`` (page clock) in which the page did not change."""
    times = [t for t in page.evaluate("window.__changes || []") if start_ms <= t <= end_ms]
    marks = [start_ms, *times, end_ms]
    return max(b - a for a, b in zip(marks, marks[1:])) / 1000


def now_ms(page) -> float:
    return page.evaluate("performance.now()")


def wait_for(page, check, timeout_s: float, poll_s: float = 0.1) -> float | None:
    """Seconds until ``check()`` is true (None after ``timeout_s``)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        try:
            if check():
                return time.perf_counter() - t0
        except Exception:  # noqa: BLE001 - the page is being redrawn; look again
            pass
        time.sleep(poll_s)
    return None


def text_shown(page, pattern: re.Pattern | str) -> bool:
    loc = page.get_by_text(pattern) if isinstance(pattern, re.Pattern) else page.get_by_text(pattern, exact=False)
    return loc.count() > 0 and loc.first.is_visible()


def settled(page) -> bool:
    return page.evaluate(IDLE) and not text_shown(page, PREPARING)


class Wire:
    """What reached the page's network (Chrome DevTools Protocol, as it arrived, whatever the page's main thread was
    doing): the document's request, the websocket's handshake and the server's messages (binary frames, base64)."""

    def __init__(self, page):
        self.document: tuple[float, float] | None = None  # (monotonic s, wall-clock s) of the document's request
        self.opened: float | None = None
        self.frames: list[tuple[float, str]] = []
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on("Network.webSocketHandshakeResponseReceived",
               lambda e: setattr(self, "opened", self.opened or e["timestamp"]))
        cdp.on("Network.webSocketFrameReceived", self._frame)
        cdp.send("Network.enable")

    def _request(self, e: dict) -> None:
        if self.document is None and e.get("type") == "Document":
            self.document = (e["timestamp"], e["wallTime"])

    def _frame(self, e: dict) -> None:
        if e["response"].get("opcode") == 2 and len(self.frames) < 200:
            self.frames.append((e["timestamp"], e["response"]["payloadData"]))

    def ms(self, timestamp: float | None, time_origin_ms: float) -> float | None:
        """A DevTools timestamp as ms from the start of the navigation (the page's ``performance.now()``)."""
        if timestamp is None or self.document is None:
            return None
        mono, wall = self.document
        return (timestamp - mono + wall) * 1000 - time_origin_ms


WIRES: dict[int, Wire] = {}  # id(page) -> its wire


def new_page(browser, context=None):
    """A page of its own browser context (a browser that never opened the app), or of ``context``, with the
    change watch, the first-paint clock and the wire installed."""
    page = context.new_page() if context is not None else browser.new_page(viewport=VIEWPORT)
    page.add_init_script(WATCH)
    page.add_init_script(PAINT)
    WIRES[id(page)] = Wire(page)
    return page


def paint(page, timeout_s: float) -> dict[str, float | None]:
    """The first paint read from the browser's clock (seconds from the start of the navigation): ``first paint``,
    the title drawn on screen, and the parts before it (``PAINT_PARTS``): the HTML received, the page's scripts run
    (DOMContentLoaded: Streamlit's bundle loaded, compiled and run), the websocket open, the server's first message
    of the run arrived (``new_session``: the session started the script), the title's message arrived (both as the
    network got them), the title in the page. Waits (up to ``timeout_s``) for the title's frame; None for a part
    that did not happen."""
    wait_for(page, lambda: page.evaluate("window.__paint.painted !== null"), timeout_s, poll_s=0.05)
    p = page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
        return {...window.__paint, origin: performance.timeOrigin, html: n ? n.responseEnd : null,
                dcl: n ? n.domContentLoadedEventEnd : null}; }""")
    wire = WIRES.pop(id(page))
    started, sent = script_steps(wire.frames)
    parts = dict(zip(PAINT_PARTS, (p["html"] or None, p["dcl"] or None, *(wire.ms(t, p["origin"]) for t in (
        wire.opened, started, sent)), p["title"])))
    return {"first paint": p["painted"], **parts} if p["painted"] is not None else {"first paint": None}


def script_steps(msgs: list[tuple[float, str]]) -> tuple[float | None, float | None]:
    """From the server's messages (time, base64 of the bytes): when the script run started (its ``new_session``
    message) and when the first heading (the page's title) arrived."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    started = sent = None
    for t, data in msgs:
        msg = ForwardMsg()
        msg.ParseFromString(base64.b64decode(data))
        if started is None and msg.HasField("new_session"):
            started = t
        elif sent is None and msg.HasField("delta") and msg.delta.new_element.HasField("heading"):
            sent = t
    return started, sent


def seconds(ms: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else v / 1000 for k, v in ms.items()}


def first_open(browser, url: str, shots: Path | None, timeout_s: float, context=None) -> dict[str, float | None]:
    """Open the app (in a browser of its own, or ``context``); screenshots each second of the first 10 s; the first
    paint with its parts (:func:`paint`, the browser's clock), the first result and the settled page (the page read
    every 0.1 s, seconds from the request to open it)."""
    page = new_page(browser, context)
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    out: dict[str, float | None] = {"first result": None, "settled": None}
    next_shot = 1.0
    while time.perf_counter() - t0 < timeout_s:
        el = time.perf_counter() - t0
        if shots and el >= next_shot and next_shot <= 10:
            page.screenshot(path=str(shots / f"first-open-{int(next_shot):02d}s.png"))
            next_shot += 1
        try:
            if out["first result"] is None and text_shown(page, RESULT):
                out["first result"] = el
            if out["first result"] is not None and settled(page):
                out["settled"] = el
                if not shots or next_shot > 10:
                    break
        except Exception:  # noqa: BLE001 - the page is being redrawn
            pass
        time.sleep(0.1)
    end = now_ms(page)
    out = {**seconds(paint(page, timeout_s)), **out, "longest still": longest_still(page, 0.0, end)}
    page.close()
    return out


def find_each_product(browser, url: str, photo: Path, timeout_s: float) -> dict[str, float | None]:
    """Upload a photo of several products, switch on "Find each product": seconds until the boxes are shown."""
    page = new_page(browser)
    page.goto(url, timeout=timeout_s * 1000)
    wait_for(page, lambda: text_shown(page, RESULT) and page.evaluate(IDLE), timeout_s)
    page.get_by_text("Upload a photo").click()
    page.locator("input[type=file]").first.set_input_files(str(photo))
    wait_for(page, lambda: text_shown(page, RESULT) and page.evaluate(IDLE), timeout_s)
    start = now_ms(page)
    t0 = time.perf_counter()
    page.get_by_text("Find each product").click()
    shown = wait_for(page, lambda: text_shown(page, "product(s) found"), timeout_s)
    out = {"boxes shown": shown, "longest still": longest_still(page, start, now_ms(page))}
    out["settled"] = wait_for(page, lambda: page.evaluate(IDLE), timeout_s) and time.perf_counter() - t0
    page.close()
    return out


def open_page(browser, url: str, ready: str, timeout_s: float) -> dict[str, float | None]:
    """Open a page of the app (a fresh session): seconds until an element matching the CSS selector ``ready`` is
    shown and the page has settled."""
    page = new_page(browser)
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    first = seconds(paint(page, timeout_s))["first paint"]
    done = wait_for(page, lambda: page.locator(ready).count() > 0 and page.evaluate(IDLE), timeout_s)
    out = {"first paint": first, "settled": done and time.perf_counter() - t0,
           "longest still": longest_still(page, 0.0, now_ms(page))}
    page.close()
    return out


def switch_embedder(browser, url: str, spec: str | None, timeout_s: float) -> dict[str, float | None]:
    """On the real-photo demo catalog, pick "Trained for this catalog" in the sidebar (or type ``spec``): seconds
    until the trained head's results are shown and the page settled. An error shown on the page ends the step."""
    page = new_page(browser)
    page.goto(f"{url}/?catalog=demo", timeout=timeout_s * 1000)
    wait_for(page, lambda: text_shown(page, RESULT) and settled(page), timeout_s)
    if text_shown(page, TRAINED):
        raise RuntimeError("the demo opened on its trained network already: nothing to switch")
    start = now_ms(page)
    t0 = time.perf_counter()
    if spec:
        box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="…or an embedder spec")
        box.fill(spec)
        box.press("Enter")
    else:
        page.get_by_test_id("stSidebar").get_by_text("Trained for this catalog", exact=True).click()
    failed = "[data-testid=stAlertContentError]"
    done = wait_for(page, lambda: page.locator(failed).count() > 0 or (
        text_shown(page, TRAINED) and text_shown(page, RESULT) and settled(page)), timeout_s)
    if page.locator(failed).count():
        print(f"switch failed: {page.locator(failed).first.inner_text()}", file=sys.stderr)
        done = None
    out = {"settled": done and time.perf_counter() - t0, "longest still": longest_still(page, start, now_ms(page))}
    page.close()
    return out


def cli_first_search(cache: Path, timeout_s: float) -> dict[str, float | None]:
    """``python -m core index`` then ``search`` on a terminal: seconds to its first line and to its results."""
    index = cache / "cli-index"
    subprocess.run([sys.executable, "-m", "core", "index", "--catalog", "sample_catalog", "--out", str(index)],
                   cwd=ROOT, env={**os.environ, "VPS_CACHE": str(cache)}, capture_output=True, timeout=timeout_s)
    leader, follower = pty.openpty()
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "core", "search", "--index", str(index),
                          "sample_catalog/queries/q000_P0000.jpg"], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=follower, env={**os.environ, "VPS_CACHE": str(cache)})
    os.close(follower)
    first = None
    try:
        while True:
            chunk = os.read(leader, 4096)
            if not chunk:
                break
            if first is None and chunk.strip():
                first = time.perf_counter() - t0
    except OSError:
        pass
    p.wait(timeout_s)
    os.close(leader)
    return {"first line": first, "results": time.perf_counter() - t0}


def median_of(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's median over ``runs`` (None where a run did not reach it: never better than it)."""
    out: dict[str, float | None] = {}
    for fig in runs[0]:
        values = sorted((r.get(fig) for r in runs), key=lambda v: (v is None, v or 0.0))
        out[fig] = values[len(values) // 2]  # the upper middle of an even count
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", default=None, help="folder for the screenshots of the first 10 s of the first open")
    ap.add_argument("--head", default=None, help="type this trained head's embedder spec (BASE+head:DIR) for the "
                                                 "embedder switch, instead of the demo catalog's own trained head")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one step may take")
    ap.add_argument("--restarts", type=int, default=1, help="restart the server this many times, opening the app "
                                                            "after each; the row gives each figure's median")
    ap.add_argument("--only-open", action="store_true", help="only the steps that open the app: the first open "
                                                             "and the open after a server restart")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from core.data.scenes import read_scenes, write_scenes

    load = os.getloadavg()
    steps: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="vps-bench-browser-") as tmp:
        cache = Path(tmp) / "cache"
        scene = read_scenes(write_scenes(ROOT / "sample_catalog", Path(tmp) / "scenes", seed=7, n=1))[0].image
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            server = Server(cache)
            try:
                steps["first open, fresh cache"] = first_open(browser, server.url, Path(a.shots) if a.shots else None,
                                                              a.timeout)
                if not a.only_open:
                    steps["Find each product, first use"] = find_each_product(browser, server.url, scene, a.timeout)
                    steps["Classifier vs neighbours"] = open_page(browser, f"{server.url}/Classifier_vs_neighbours",
                                                                  "[data-testid=stMetric]", a.timeout)
                    steps["switch the embedder to a trained head"] = switch_embedder(browser, server.url, a.head,
                                                                                     a.timeout)
            finally:
                server.stop()
            runs = []
            for _ in range(max(1, a.restarts)):
                server = Server(cache)
                try:
                    runs.append(first_open(browser, server.url, None, a.timeout))
                    print(f"restart {len(runs)}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()
                                                               if v is not None), file=sys.stderr, flush=True)
                finally:
                    server.stop()
            steps["open after a server restart"] = median_of(runs)
            browser.close()
        if not a.only_open:
            steps["CLI: first search on a new index"] = cli_first_search(Path(tmp) / "cli", a.timeout)
    rows = [{"step": step, "figure": fig, "seconds": None if s is None else round(s, 2),
             "goal": GOALS.get(step, {}).get(fig)} for step, figures in steps.items() for fig, s in figures.items()]
    print(json.dumps({"load_at_start": [round(x, 1) for x in load], "load_at_end": [round(x, 1) for x in
                                                                                    os.getloadavg()],
                      "cpus": os.cpu_count(), "restarts": max(1, a.restarts), "rows": rows}))
    return 0

if __name__ == "__main__":
    sys.exit(main())
