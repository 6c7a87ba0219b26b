"""Atomic writes: single files (:func:`atomic_path`, :func:`atomic_write`) and versioned folders (each write makes
a new generation, then one ``os.replace`` publishes it)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

POINTER = "CURRENT"
KEEP_GENERATIONS = 2


class StoreError(RuntimeError):
    pass


def current_generation(root: Path) -> Path | None:
    ptr = root / POINTER
    if not ptr.is_file():
        return None
    name = ptr.read_text().strip()
    gen = root / name
    if not name.startswith("gen-") or not (gen / "manifest.json").is_file():
        raise StoreError(f"{root}: CURRENT points at a missing generation {name!r}")
    return gen


def read_current(root: Path) -> tuple[Path, dict] | None:
    """The current generation of ``root`` and its manifest, or None when there is none."""
    gen = current_generation(root)
    return None if gen is None else (gen, json.loads((gen / "manifest.json").read_text()))


def stale_key(manifest: dict, expected: dict) -> str | None:
    """The first key of ``expected`` whose value ``manifest`` does not hold (None: the artefact is current)."""
    return next((k for k, v in expected.items() if manifest.get(k) != v), None)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) to write a file or a folder to; when the block ends
    without error it is synced and replaces ``path`` in one step, else it is deleted. Readers see the old
    content or the new, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text is encoded with ``encoding``) to ``path`` atomically; returns ``path``."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return Path(path)


def write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (e.g. an unchanged file shared with the previous generation), or copy it
    where links are not possible (another filesystem)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextmanager
def held_lock(path: Path, timeout: float, busy: Exception) -> Iterator[None]:
    """Hold the file lock ``path`` (waiting up to ``timeout`` s); raise ``busy`` if another holder keeps it."""
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise busy from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writer_lock(root: Path, timeout: float = 30.0) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with held_lock(root / ".lock", timeout,
                   StoreError(f"{root} is being updated by another process; try again in a moment")):
        yield


@contextmanager
def new_generation(root: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it becomes the current generation atomically.

    A crash at any point leaves the previous generation current and complete. Call inside
    :func:`writer_lock`.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        gen = root / f"gen-{uuid.uuid1().hex}"
        os.rename(tmp, gen)
        atomic_write(root / POINTER, gen.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _collect(root, gen.name)


def _collect(root: Path, current: str) -> None:
    """Delete old generations and leftovers of crashed writes (open memory maps stay valid on POSIX)."""
    gens = sorted((p for p in root.glob("gen-*") if p.name != current), key=lambda p: p.stat().st_mtime)
    for old in gens[: max(0, len(gens) - (KEEP_GENERATIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    for junk in list(root.glob(".tmp-*")) + list(root.glob(f".{POINTER}.*")):
        shutil.rmtree(junk, ignore_errors=True) if junk.is_dir() else junk.unlink(missing_ok=True)
