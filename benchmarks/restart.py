"""``python -m core bench --sections restart``: the first result after a server restart, without a browser.

A restarted server is a fresh Python process with a warm cache. On a copy of the sample catalog, one fresh
process warms a private cache (the index, the ONNX model), then each of several more fresh processes is timed
from its start: Python itself, importing the engine, loading the embedder, loading the index and the first search
(the photo embedded, ranked by distance while the filters are prepared, as the Search page's first results are).
Streamlit's start and the page's drawing come on top (section ``browser``). This module imports nothing of the
engine at its top, so that the child's import step is the engine's own.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: modules a first search should not need; the table says which ones it imported
HEAVY = ("torch", "open_clip", "scipy", "sklearn", "umap", "pandas")
STEPS = ("import the engine", "load the embedder", "load the index", "first search")


def first_result(catalog: str, photo: str, launched: float) -> dict:
    """Seconds of each of :data:`STEPS` in this process (Python's own start: since ``launched``, a ``time.time()``
    taken before the process was started), and the :data:`HEAVY` modules it imported."""
    started = time.time() - launched
    t = [time.perf_counter()]
    from core.embedding import DEFAULT_SPEC, load_embedder
    from core.embedding.query import embed_query
    from core.index.workspace import ensure_index
    from core.search.engine import Searcher

    t.append(time.perf_counter())
    emb = load_embedder(DEFAULT_SPEC)
    t.append(time.perf_counter())
    index = ensure_index(catalog, emb)
    t.append(time.perf_counter())
    hits = Searcher(index, emb).search(embed_query(emb, photo), wait=False).hits
    t.append(time.perf_counter())
    return {"seconds": {"start Python": started, **dict(zip(STEPS, (b - a for a, b in zip(t, t[1:]))))},
            "hits": len(hits), "heavy": [m for m in HEAVY if m in sys.modules],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def fresh_process(catalog: Path, photo: Path, cache: Path) -> dict:
    """:func:`first_result` in a new interpreter (with ``cache`` as its ``VPS_CACHE``)."""
    p = subprocess.run([sys.executable, "-m", "benchmarks.restart", str(catalog), str(photo), repr(time.time())],
                       cwd=ROOT, env={**os.environ, "VPS_CACHE": str(cache)}, capture_output=True, text=True,
                       timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"the restart run failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_restart(quick: bool, workdir: Path):
    from benchmarks.common import Table
    from core.config.paths import SAMPLE_CATALOG

    d = workdir / "restart"
    shutil.rmtree(d, ignore_errors=True)
    catalog, cache = d / "catalog", d / "cache"
    shutil.copytree(SAMPLE_CATALOG, catalog)
    photo = catalog / "queries" / "q001_P0001.jpg"
    warm = fresh_process(catalog, photo, cache)  # the server before its restart: index and ONNX model cached
    runs = [fresh_process(catalog, photo, cache) for _ in range(3 if quick else 7)]
    t = Table(f"First result after a server restart (fresh process, warm cache; {len(runs)} runs)",
              ["step", "median s", "min s", "max s"])
    rows = {s: [r["seconds"][s] for r in runs] for s in ("start Python", *STEPS)}
    rows["process start to first result"] = [sum(r["seconds"].values()) for r in runs]
    for name, secs in rows.items():
        t.add(name, statistics.median(secs), min(secs), max(secs))
    rss = [r["peak_rss_mb"] for r in runs]
    t.add("peak resident memory, MB (not seconds)", statistics.median(rss), min(rss), max(rss))
    heavy = sorted({m for r in runs for m in r["heavy"]})
    t.notes += [f"Heavy modules the first search imported: {', '.join(heavy) or 'none'} (of {', '.join(HEAVY)}). "
                f"The run that warmed the cache took {sum(warm['seconds'].values()):.1f} s.",
                "Each run is `python -m benchmarks.restart CATALOG PHOTO LAUNCHED` with the warmed VPS_CACHE: what a "
                "restarted server does before its first results, less Streamlit's start and the page itself."]
    shutil.rmtree(d, ignore_errors=True)
    return t


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m benchmarks.restart CATALOG_FOLDER PHOTO [LAUNCHED]: times one first search in this "
                 "process (LAUNCHED: time.time() before it was started)")
    print(json.dumps(first_result(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) == 4 else time.time())))
