"""Benchmark section ``served``: the load test of the served app (``scripts/load_test.py``) as a table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.config.paths import PROJECT_ROOT

SCRIPT = Path(PROJECT_ROOT) / "scripts" / "load_test.py"


DRIVEN_BY = {"websocket": "sessions speaking Streamlit's websocket protocol, no browser",
             "browser": "headless Chromium sessions"}


def bench_served(quick: bool, sessions: int | None = None, searches: int | None = None,
                 budget_s: float = 900.0, driver: str = "websocket"):
    """Run the load test in its own process (bounded by ``budget_s``) and tabulate its figures: N first opens at
    once on an empty cache (one shared index build), then N sessions x ``searches`` searches, driven by
    ``driver`` (``websocket``: Streamlit's protocol, so the server's figures; ``browser``: Chromium pages)."""
    from benchmarks.common import Table

    sessions = sessions or 6
    searches = searches or (3 if quick else 5)
    t = Table(f"Served app under load (streamlit on 127.0.0.1, served mode, {DRIVEN_BY[driver]})",
              ["sessions", "searches", "load avg", "first opens p50 / max s", "first opens peak / held RSS MB",
               "settle p50 s", "settle p99 s", "server p50 ms", "server p99 ms", "server CPU (cores)",
               "peak / held RSS MB", "timeouts shown", "errors"])
    cmd = [sys.executable, str(SCRIPT), "--sessions", str(sessions), "--searches", str(searches),
           "--budget", str(budget_s), "--cold", "--driver", driver]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s + 60, cwd=PROJECT_ROOT)
        res = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        t.notes.append(f"The load test did not report: {type(e).__name__}.")
        return t
    t.add(res["sessions"], res["searches"], f"{res.get('first_open_load')} / {res['load_avg'][0]}",
          f"{res.get('first_open_p50_s')} / {res.get('first_open_max_s')}",
          f"{res.get('first_open_peak_rss_mb')} / {res.get('first_open_held_rss_mb')}",
          res["search_p50_s"], res["search_p99_s"], res["server_search_p50_ms"], res["server_search_p99_ms"],
          res["server_cpu_share"], f"{res['server_peak_rss_mb']} / {res['server_held_rss_mb']}",
          res["timeouts_shown"], len(res["errors"]))
    t.notes += [f"First opens: {sessions} sessions open the app at once on an empty cache (the sample catalog is "
                "indexed once for all of them); time to their first results, the server's peak memory then and "
                "what it holds 5 s later. Load avg: the machine's 1-minute load average at the start of the first "
                "opens / of the searches.",
                f"Then each session picks {searches} other example photos. Settle: from the pick to the end of the "
                "page's run as the client sees it (embedding, search, the page's run"
                + (", rendering" if driver == "browser" else ": the websocket's script_finished") + "). Server: "
                "the search time the page reports (feedback, queueing in the shared pool, search).",
                "The browsers run on the same machine as the server: on 2 cores their rendering, not the server "
                "(see its CPU), is most of the settle time." if driver == "browser" else
                "No browser: each session sends the new photo as the page's widget state and reads the page's "
                "elements back (it checks that results arrived); the media the page links are not fetched.",
                f"Server idle RSS {res['server_idle_rss_mb']} MB before the first visit. Picks the page did not take "
                f"(it showed the photo before), made again by the session: {res.get('picks_repeated', 0)}.",
                *(f"Error: {e}" for e in res["errors"][:3])]
    return t
