"""Benchmark section ``browser``: the app's latency in headless Chromium from a fresh cache
(``scripts/bench_browser.py``, in its own process), each figure against its goal, with the load average."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.config.paths import PROJECT_ROOT

SCRIPT = Path(PROJECT_ROOT) / "scripts" / "bench_browser.py"
RESTARTS = 5  # server restarts, the app opened after each: the restart row gives each figure's median


def bench_browser(budget_s: float = 2400.0):
    """Run the browser driver (bounded by ``budget_s``) and tabulate its figures."""
    from benchmarks.common import Table

    t = Table("The app in a real browser (streamlit run, headless Chromium, fresh cache)",
              ["step", "figure", "seconds", "goal s", "met"])
    try:
        done = subprocess.run([sys.executable, str(SCRIPT), "--restarts", str(RESTARTS)], capture_output=True,
                              text=True, timeout=budget_s, cwd=PROJECT_ROOT)
        res = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        t.notes.append(f"The browser benchmark did not report: {type(e).__name__}.")
        return t
    for r in res["rows"]:
        s, goal = r["seconds"], r["goal"]
        t.add(r["step"], r["figure"], "not reached" if s is None else s, "" if goal is None else goal,
              "" if goal is None else ("yes" if s is not None and s <= goal else "NO"))
    t.notes += [f"Load average (1/5/15 min) {res['load_at_start']} at the start, {res['load_at_end']} at the end, "
                f"on {res['cpus']} CPUs; the browser runs on the same machine as the server.",
                "first paint: the first frame drawn with the page's title, on the browser's clock from the start "
                "of the navigation; the 'paint ·' rows are the steps before it on the same clock (the HTML "
                "received, Streamlit's scripts run, the websocket open, the server's script run started and "
                "its title sent, as the network got them; the title in the page). The other figures: the page "
                "read every 0.1 s. "
                "Each page opens in a browser of its own (no cached files). "
                f"The restart row: each figure's median over {res.get('restarts', 1)} restarts. "
                "longest still: the longest time in which nothing on the page "
                "changed (a counter, a bar, a spinner each count as change). The Evaluation page's training is "
                "left out here; the embedder switch is the demo catalog's \"Trained for this catalog\"."]
    return t
