"""Content digests of catalog files, cached per catalog folder: a file is hashed again only when its size,
modification or change time, or inode changed. The cache is one small JSON file under ``cache_dir()/digests``, replaced
atomically; a missing, unreadable or foreign cache only costs the hashing."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.config.paths import cache_dir
from core.config.store import StoreError, read_regular, replace_json

#: files changed this recently are not cached (a same-size rewrite within the clock's granularity would be missed)
RACY_NS = 2_000_000_000
MAX_CACHE_BYTES = 512 << 20


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def _cache_path(root: Path) -> Path:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "digests" / f"{key}.json"


def _read_cache(path: Path, root: Path) -> dict[str, list]:
    try:
        data = json.loads(read_regular(path, MAX_CACHE_BYTES))
    except (OSError, StoreError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("root") != str(root.resolve()) or not isinstance(data.get("files"),
                                                                                               dict):
        return {}
    return data["files"]


def file_digests(root: Path, rels: list[str]) -> dict[str, str]:
    """``rel -> sha1`` of ``root/rel`` for every path in ``rels``, reusing the cached digest of unchanged files."""
    cache_file = _cache_path(root)
    cached = _read_cache(cache_file, root)
    now = time.time_ns()
    out: dict[str, str] = {}
    keep: dict[str, list] = {}
    changed = False
    base = f"{root}/"
    for rel in rels:
        if rel in out:
            continue
        st = os.stat(base + rel)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entry = cached.get(rel)
        if type(entry) is list and len(entry) == 5 and entry[:4] == stamp and type(entry[4]) is str:
            out[rel] = entry[4]
        else:
            out[rel] = file_digest(Path(base + rel))
            changed = True
        if now - st.st_mtime_ns > RACY_NS:
            keep[rel] = [*stamp, out[rel]]
        else:
            changed = True
    if changed or len(keep) != len(cached):
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            replace_json(cache_file, {"root": str(root.resolve()), "files": keep})
        except OSError:
            pass  # a cache: an unwritable one only costs time
    return out
