"""A bounded index cache: each use of an index is stamped; beyond ``keep`` indexes the least recently used are
deleted, with the UMAP maps and attribute filters derived from them (``VPS_CACHE_MAX_INDEXES``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from core.config.paths import cache_dir
from core.config.store import held_lock

STAMP = "LAST_USED"


class _Busy(Exception):
    pass


def touch(index_dir: str | Path) -> None:
    """Stamp ``index_dir`` as used now."""
    d = Path(index_dir)
    if d.is_dir():
        (d / STAMP).write_text(f"{time.time():.3f}")


def last_used(index_dir: Path) -> float:
    for f in (index_dir / STAMP, index_dir / "CURRENT", index_dir):
        try:
            return f.stat().st_mtime
        except OSError:
            continue
    return 0.0


def cached_indexes() -> list[Path]:
    """Index folders in the cache, most recently used first."""
    root = cache_dir() / "indexes"
    dirs = [d for d in root.iterdir() if d.is_dir() and (d / "CURRENT").exists()] if root.is_dir() else []
    return sorted(dirs, key=last_used, reverse=True)


def _derived(index_dirs: list[Path]) -> list[Path]:
    """UMAP and attribute folders whose manifests name one of ``index_dirs``."""
    names = [str(d.resolve()) for d in index_dirs]
    out = []
    for kind in ("umap", "attributes"):
        base = cache_dir() / kind
        for d in base.iterdir() if base.is_dir() else []:
            texts = []
            for f in [*d.glob("*.json"), *d.glob("*/*.json")][:8]:
                try:
                    texts.append(f.read_text(errors="replace"))
                except OSError:
                    pass
            if any(f'"{n}"' in t for t in texts for n in names):
                out.append(d)
    return out


def evict_indexes(keep: int, protect: tuple[str | Path, ...] = ()) -> list[Path]:
    """Delete the least recently used cached indexes beyond ``keep`` (0 = keep all), skipping ``protect`` and any
    being written; returns the folders deleted."""
    if keep <= 0:
        return []
    safe = {Path(p).resolve() for p in protect}
    gone = []
    for d in cached_indexes()[keep:]:
        if d.resolve() in safe:
            continue
        try:
            with held_lock(d / ".lock", 0.0, _Busy()):
                shutil.rmtree(d, ignore_errors=True)
        except _Busy:
            continue
        gone.append(d)
    for d in _derived(gone):
        shutil.rmtree(d, ignore_errors=True)
    return gone
