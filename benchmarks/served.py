"""Benchmark section ``served``: the load test of the served app (``scripts/load_test.py``) as a table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.config.paths import PROJECT_ROOT

SCRIPT = Path(PROJECT_ROOT) / "scripts" / "load_test.py"


def bench_served(quick: bool, sessions: int | None = None, searches: int | None = None,
                 budget_s: float = 900.0):
    """Run the load test in its own process (bounded by ``budget_s``) and tabulate its figures."""
    from benchmarks.common import Table

    sessions = sessions or (4 if quick else 8)
    searches = searches or (3 if quick else 5)
    t = Table("Served app under load (streamlit on 127.0.0.1, served mode, headless Chromium sessions)",
              ["sessions", "searches", "browser p50 s", "browser p99 s", "server p50 ms", "server p99 ms",
               "server CPU (cores)", "first load p50 s", "server peak RSS MB", "timeouts shown", "errors"])
    cmd = [sys.executable, str(SCRIPT), "--sessions", str(sessions), "--searches", str(searches),
           "--budget", str(budget_s)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s + 60, cwd=PROJECT_ROOT)
        res = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        t.notes.append(f"The load test did not report: {type(e).__name__}.")
        return t
    t.add(res["sessions"], res["searches"], res["search_p50_s"], res["search_p99_s"], res["server_search_p50_ms"],
          res["server_search_p99_ms"], res["server_cpu_share"], res["first_load_p50_s"], res["server_peak_rss_mb"],
          res["timeouts_shown"], len(res["errors"]))
    t.notes += [f"Each session opens the app, then picks {searches} other example photos. Browser: from the pick to "
                "the end of the page's run as the browser sees it (embedding, search, the page's run, rendering). "
                "Server: the search time the page reports (feedback, queueing in the shared pool, search).",
                "The browsers run on the same machine as the server: on 2 cores their rendering, not the server "
                "(see its CPU), is most of the browser time.",
                f"Warm-up visit before measuring (model, index, attribute filters): {res['warmup_s']} s; server "
                f"idle RSS {res['server_idle_rss_mb']} MB.",
                *(f"Error: {e}" for e in res["errors"][:3])]
    return t
