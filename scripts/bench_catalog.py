"""Benchmark: loading and fingerprinting a large CSV catalog (what every new app session pays).

Makes a synthetic catalog of ``--rows`` rows (one tiny distinct JPEG file per row, 100 rows per category, a few
attribute columns) under ``--workdir``, then times, each in a fresh process: ``load_catalog``, the first
``fingerprint()`` (cold fingerprint cache) and a second one (warm cache, as a new app session sees it); wall and
CPU seconds (CPU is the steadier figure on a shared machine). ``--project DIR`` times another checkout's code.
Prints the figures; run from the project root: ``python scripts/bench_catalog.py --rows 200000``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import resource, sys, time
from core.data.catalog import load_catalog
t0, c0 = time.perf_counter(), time.process_time()
cat = load_catalog(sys.argv[1])
t1, c1 = time.perf_counter(), time.process_time()
fp = cat.fingerprint() if sys.argv[2] == "1" else "-"
t2, c2 = time.perf_counter(), time.process_time()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{len(cat.rows)} {len(cat.skipped)} {t1 - t0:.2f} {c1 - c0:.2f} {t2 - t1:.2f} {c2 - c1:.2f} {rss:.0f} {fp}")
"""


def make_catalog(root: Path, rows: int) -> None:
    """``rows`` rows, each with its own small JPEG (same bytes, distinct files)."""
    if (root / "catalog.csv").is_file():
        return
    (root / "images").mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "JPEG")
    data = buf.getvalue()
    with open(root / "catalog.csv.tmp", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "product_id", "title", "category", "colour", "price"])
        for i in range(rows):
            name = f"images/{i:07d}.jpg"
            (root / name).write_bytes(data)
            w.writerow([name, f"P{i // 2:07d}", f"Product {i // 2} in a synthetic catalog", f"cat{i // 100 % 50}",
                        ("red", "green", "blue")[i % 3], f"{(i % 997) / 10:.2f}"])
    os.replace(root / "catalog.csv.tmp", root / "catalog.csv")


def run_child(project: Path, root: Path, cache: Path, fingerprint: bool) -> list[str]:
    env = {**os.environ, "VPS_CACHE": str(cache), "PYTHONPATH": str(project)}
    p = subprocess.run([sys.executable, "-c", CHILD, str(root), "1" if fingerprint else "0"], cwd=project, env=env,
                       capture_output=True, text=True, timeout=3600)
    if p.returncode:
        sys.exit(p.stderr)
    return p.stdout.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--workdir", default=None, help="where the synthetic catalog is made (kept for reruns)")
    ap.add_argument("--project", default=str(ROOT), help="the checkout whose core is timed (compare two versions)")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="vps-bench-catalog-"))
    root = work / f"catalog-{a.rows}"
    t = time.perf_counter()
    make_catalog(root, a.rows)
    print(f"catalog: {a.rows} rows in {root} (made in {time.perf_counter() - t:.1f} s); code: {a.project}; "
          f"load average {os.getloadavg()[0]:.1f}")
    cache = Path(tempfile.mkdtemp(prefix="vps-bench-cache-", dir=work))
    for label, fingerprint in (("load only", False), ("load + fingerprint, cold cache", True),
                               ("load + fingerprint, warm cache", True)):
        n, skipped, load_s, load_cpu, fp_s, fp_cpu, rss, fp = run_child(Path(a.project), root, cache, fingerprint)
        print(f"{label:<32} rows {n:>7}  skipped {skipped:>3}  load {load_s:>6} s ({load_cpu:>6} s CPU)  "
              f"fingerprint {fp_s:>6} s ({fp_cpu:>6} s CPU)  peak RSS {rss:>5} MB  {fp}")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
