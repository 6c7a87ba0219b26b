"""Content digests of catalog files, cached per catalog folder: a file is hashed again only when its size,
modification or change time, or inode changed. The cache is one JSON file under ``cache_dir()/digests``, in
columns (paths, stamps, digests) so that 10^5 files parse in a fraction of a second, replaced atomically; a
missing, unreadable or foreign cache only costs the hashing."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.config.paths import cache_dir
from core.config.store import StoreError, atomic_write, read_regular

#: files changed this recently are hashed again next time (a same-size rewrite within the clock's tick is possible)
RACY_NS = 2_000_000_000
MAX_CACHE_BYTES = 512 << 20
HEX = 40  # characters of a sha1 digest


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def _cache_path(root: Path) -> Path:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "digests" / f"{key}.json"


def _read_cache(path: Path, root: Path) -> tuple[list, list, str]:
    """``(paths, stamps, digests)``: 4 stamps and 40 hex characters per path; empty when unusable."""
    try:
        data = json.loads(read_regular(path, MAX_CACHE_BYTES))
        rels, stamps, digests = data["paths"], data["stamps"], data["digests"]
        if (data["root"] == str(root.resolve()) and type(rels) is list and type(stamps) is list
                and type(digests) is str and len(stamps) == 4 * len(rels) and len(digests) == HEX * len(rels)):
            return rels, stamps, digests
    except (OSError, StoreError, ValueError, KeyError, TypeError):
        pass
    return [], [], ""


def file_digests(root: Path, rels: list[str]) -> dict[str, str]:
    """``rel -> sha1`` of ``root/rel`` for every path in ``rels``, reusing the cached digest of unchanged files."""
    cache_file = _cache_path(root)
    old_rels, old_stamps, old_digests = _read_cache(cache_file, root)
    paths = list(dict.fromkeys(rels))
    where = range(len(paths)) if old_rels == paths else None  # the usual case: the same files in the same order
    if where is None:
        pos = {r: i for i, r in enumerate(old_rels)}
        where = [pos.get(r, -1) for r in paths]
    recent = time.time_ns() - RACY_NS
    base = f"{root}/"
    stamps: list[int] = []
    digests: list[str] = []
    hashed = 0
    for rel, j in zip(paths, where):
        st = os.stat(base + rel)
        size, mtime, ctime, ino = st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
        k = 4 * j
        if (j >= 0 and old_stamps[k] == size and old_stamps[k + 1] == mtime and old_stamps[k + 2] == ctime
                and old_stamps[k + 3] == ino):
            digests.append(old_digests[HEX * j : HEX * j + HEX])
        else:
            digests.append(file_digest(Path(base + rel)))
            hashed += 1
        stamps.extend((size if mtime < recent else -1, mtime, ctime, ino))  # a recent file is hashed again
    if hashed or old_rels != paths:
        try:
            atomic_write(cache_file, json.dumps({"root": str(root.resolve()), "paths": paths, "stamps": stamps,
                                                 "digests": "".join(digests)}, separators=(",", ":")))
        except OSError:
            pass  # a cache: an unwritable one only costs time
    return dict(zip(paths, digests))
