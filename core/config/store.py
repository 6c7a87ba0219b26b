"""Atomic writes: single files (:func:`atomic_path`, :func:`atomic_write`) and versioned folders (each write makes
a new generation, then one ``os.replace`` publishes it)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

POINTER = "CURRENT"
KEEP_GENERATIONS = 2
#: a generation folder's name: ``gen-`` and letters, digits, ``_`` or ``-`` (no separators, no dots)
GEN_NAME = re.compile(r"gen-[A-Za-z0-9_-]{1,64}")
MANIFEST_BYTES = 1 << 20


class StoreError(RuntimeError):
    pass


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a symlink, FIFO or device) of at most ``max_bytes``.

    Raises :class:`StoreError` (one line) otherwise; a missing file raises ``FileNotFoundError``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; only regular files are read") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file")
        if st.st_size > max_bytes:
            raise StoreError(f"{path} is {st.st_size:,} bytes, more than the {max_bytes:,} expected at most")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise StoreError(f"{path} grew past {max_bytes:,} bytes while being read")
    return data


def current_generation(root: Path) -> Path | None:
    """The live ``gen-*`` folder of ``root``, or None when nothing was published yet.

    ``CURRENT`` must name a direct child folder of ``root`` (no separators, not a symlink)."""
    try:
        name = read_regular(root / POINTER, 256).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return None
    if not GEN_NAME.fullmatch(name):
        raise StoreError(f"{root}: CURRENT does not name a generation folder ({name[:80]!r})")
    gen = root / name
    try:
        mode = os.lstat(gen).st_mode
    except FileNotFoundError:
        raise StoreError(f"{root}: CURRENT points at a missing generation {name!r}") from None
    if not stat.S_ISDIR(mode) or gen.resolve().parent != root.resolve():
        raise StoreError(f"{root}: CURRENT names {name!r}, which is not a folder inside the index")
    if not (gen / "manifest.json").is_file():
        raise StoreError(f"{root}: CURRENT points at a missing generation {name!r}")
    return gen


def read_current(root: Path) -> tuple[Path, dict] | None:
    """The current generation of ``root`` and its manifest, or None when there is none."""
    gen = current_generation(root)
    return None if gen is None else (gen, json.loads(read_regular(gen / "manifest.json", MANIFEST_BYTES)))


def stale_key(manifest: dict, expected: dict) -> str | None:
    """The first key of ``expected`` whose value ``manifest`` does not hold (None: the artefact is current)."""
    return next((k for k, v in expected.items() if manifest.get(k) != v), None)


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the device or quota is full (also as numpy and Annoy word a short write)."""
    text = str(e)
    return (getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in text
            or ("requested and" in text and "written" in text))


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

    A crash or a full disk at any point leaves the previous generation current and complete (a full disk is
    reported as one :class:`StoreError` line). Call inside :func:`writer_lock`.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    gen: Path | None = None
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
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        for junk in root.glob(f".{POINTER}.*"):
            junk.unlink(missing_ok=True)
        if gen is not None and _pointer(root) != gen.name:  # renamed but never published
            shutil.rmtree(gen, ignore_errors=True)
        if isinstance(e, OSError) and disk_full(e):
            raise StoreError(f"no space left on device while writing {root}; the previous version is intact "
                             "(free some space and try again)") from None
        raise
    _collect(root, gen.name)


def _pointer(root: Path) -> str | None:
    try:
        return read_regular(root / POINTER, 256).decode("utf-8", "replace").strip()
    except (OSError, StoreError):
        return None


def _collect(root: Path, current: str) -> None:
    """Delete old generations and leftovers of crashed writes (open memory maps stay valid on POSIX)."""
    gens = sorted((p for p in root.glob("gen-*") if p.name != current), key=lambda p: p.stat().st_mtime)
    for old in gens[: max(0, len(gens) - (KEEP_GENERATIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    for junk in list(root.glob(".tmp-*")) + list(root.glob(f".{POINTER}.*")):
        shutil.rmtree(junk, ignore_errors=True) if junk.is_dir() else junk.unlink(missing_ok=True)
