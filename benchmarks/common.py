"""What every benchmark section shares: measuring (CPU time, resident memory, the machine), data (real images,
synthetic vectors around them, exact top-k), and the result table rendered as markdown."""

from __future__ import annotations

import glob
import os
import platform
import re
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

K = 10


# ---------------------------------------------------------------- measuring
def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> dict[str, float]:
    """Resident memory of this process: anonymous (private) and file-backed (memory-mapped, reclaimable)."""
    out = {"anon": 0.0, "file": 0.0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                out["anon"] = int(line.split()[1]) / 1024
            elif line.startswith("RssFile:"):
                out["file"] = int(line.split()[1]) / 1024
    except OSError:
        out["anon"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def machine_facts() -> dict[str, str]:
    model = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                  if ln.startswith("model name")), platform.processor() or "unknown")
    mem = next((int(ln.split()[1]) / 2**20 for ln in _read("/proc/meminfo").splitlines()
                if ln.startswith("MemTotal")), 0.0)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": str(os.cpu_count()),
            "cpu": model, "ram": f"{mem:.1f} GiB", "python": platform.python_version(),
            "load": f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min at start)"}


def _read(p: str) -> str:
    try:
        return Path(p).read_text()
    except OSError:
        return ""


def dir_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def in_fresh_process(fn: Callable, *args):
    """Run ``fn(*args)`` in a new interpreter (spawn) and return its result: clean memory per case."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# ---------------------------------------------------------------- data
def real_images(quick: bool) -> tuple[list[Path], list[Path], str]:
    """(catalog JPEGs, query JPEGs, source name): grocery photos when present, else the sample catalog."""
    from core.config.paths import DATASETS, SAMPLE_CATALOG

    g = DATASETS / "grocery" / "dataset"
    if (g / "train").is_dir() and (g / "val").is_dir():
        cat = sorted(Path(p) for p in glob.glob(str(g / "train" / "**" / "*.jpg"), recursive=True))
        qs = sorted(Path(p) for p in glob.glob(str(g / "val" / "**" / "*.jpg"), recursive=True))
        return cat, qs, "grocery"
    cat = sorted((SAMPLE_CATALOG / "images").glob("*.jpg"))
    return cat, sorted((SAMPLE_CATALOG / "queries").glob("*.jpg")), "sample_catalog"


def labels_of(paths: list[Path], source: str) -> list[str]:
    """Ground-truth label per image: the fine class folder (grocery) or product id (sample)."""
    if source == "grocery":
        return [p.parent.name for p in paths]
    ids = [re.search(r"P\d+", p.stem) for p in paths]  # images/P0007_b.jpg, queries/q007_P0007.jpg
    return [m.group() if m else p.stem for m, p in zip(ids, paths)]


def synthetic_vectors(real: np.ndarray, n: int, seed: int = 0, spread: float = 0.6,
                      out: Path | None = None, chunk: int = 50_000) -> np.ndarray:
    """``n`` unit vectors: a random real vector plus Gaussian noise with the real data's covariance
    (scaled by ``spread``). Written chunk by chunk to ``out`` (.npy, memory-mapped) when given."""
    rng = np.random.default_rng(seed)
    mu = real.mean(0)
    _, s, vt = np.linalg.svd(real - mu, full_matrices=False)
    scale = (s / np.sqrt(max(1, len(real) - 1)))[:, None] * vt  # rows: principal axes times their std
    arr = (np.lib.format.open_memmap(out, "w+", np.float32, (n, real.shape[1])) if out
           else np.empty((n, real.shape[1]), np.float32))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        centres = real[rng.integers(0, len(real), b - a)]
        noise = (rng.standard_normal((b - a, len(scale)), np.float32) @ scale) * spread
        v = centres + noise
        arr[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    if out:
        arr.flush()
    return arr


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int = K, chunk: int = 100_000) -> np.ndarray:
    """Ground truth: ids of the ``k`` largest inner products per query (chunked over ``data``)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for a in range(0, len(data), chunk):
        s = queries @ np.asarray(data[a:a + chunk]).T
        top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        best_i = np.concatenate([best_i, top + a], 1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


# ---------------------------------------------------------------- results
@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *row) -> None:
        self.rows.append([_fmt(v) for v in row])
        print("  " + " | ".join(f"{c}={v}" for c, v in zip(self.columns, self.rows[-1])), flush=True)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:.0e}".replace("e+0", "e")
    return str(v)


def render(tables: list[Table], facts: dict[str, str], quick: bool) -> str:
    head = [f"## Run of {facts['date']} ({'quick' if quick else 'full'})", "",
            f"- machine: {facts['nproc']} x {facts['cpu']}, {facts['ram']} RAM, Python {facts['python']}",
            f"- load average: {facts['load']}", f"- command: `python -m core bench{' --quick' if quick else ''}`", ""]
    return "\n".join(head) + "\n" + "\n".join(t.markdown() for t in tables)
