"""Edit a catalog on disk: add a product (images + fields) or remove products, and update its index in place.

``catalog.csv`` is rewritten atomically (``core.config.store.atomic_write``) under a per-catalog lock, so a crash or
a second writer never leaves a half-written file. Cells are escaped so spreadsheets do not run them. Nothing is
written through a symbolic link (``catalog.csv``, ``images/`` or an image file), so an edit never lands outside
the catalog folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.config.paths import cache_dir
from core.config.store import atomic_write, held_lock
from core.data.catalog import CSV_NAME, RESERVED, Catalog, CatalogError, load_catalog
from core.data.csv_records import records
from core.data.images import ImageSource, open_image
from core.embedding import Embedder
from core.index.backend import IndexBackend

#: Longest side of an added image as stored in the catalog.
MAX_SIDE = 2048
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CatalogEditError(CatalogError):
    """An edit that cannot be made (bad product id, unknown column, a folder catalog, ...)."""


@dataclass
class EditResult:
    index: IndexBackend
    product_ids: list[str]
    images: list[str] = field(default_factory=list)  # paths relative to the catalog root
    skipped: list[str] = field(default_factory=list)
    indexed: int = 0  # images of the edit that made it into the index


def escape_cell(value: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (``=cmd()``, ``@SUM``); numbers stay numbers."""
    v = str(value).replace("\r", " ").replace("\n", " ").strip()
    if v.startswith(_FORMULA_START):
        try:
            float(v)
            return v
        except ValueError:
            return "'" + v
    return v


@contextmanager
def catalog_lock(root: Path, timeout: float = 30.0) -> Iterator[None]:
    """Serialise writers of one catalog folder (the lock file lives in the cache, not the catalog)."""
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    d = cache_dir() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    with held_lock(d / f"catalog-{key}.lock", timeout,
                   CatalogEditError(f"{root} is being edited by another user; try again in a moment")):
        yield


def _csv_path(root: Path) -> Path:
    p = root / CSV_NAME
    if p.is_symlink():
        raise CatalogEditError(f"{p} is a symbolic link; refusing to write through it (edit the real file's folder)")
    if not p.is_file():
        raise CatalogEditError(f"{root} is a folder of images without {CSV_NAME}; only CSV catalogs can be edited")
    return p


def _read(p: Path) -> tuple[str, str]:
    """(text, encoding) of a CSV file, as :func:`core.data.catalog.load_catalog` reads it."""
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _row_text(header: list[str], record: Mapping[str, str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([record.get(c, "") for c in header])
    return buf.getvalue()


def new_product_id(catalog: Catalog) -> str:
    """A fresh id like ``U0001`` not used in ``catalog``."""
    have = set(catalog.products)
    n = 1
    while f"U{n:04d}" in have:
        n += 1
    return f"U{n:04d}"


def _image_dir(root: Path) -> tuple[Path, str]:
    """``root/images``, created if missing; refused when it is a symbolic link or resolves outside ``root``."""
    folder = root / "images"
    if folder.is_symlink():
        raise CatalogEditError(f"{folder} is a symbolic link; refusing to write images through it")
    folder.mkdir(exist_ok=True)
    if not stat.S_ISDIR(os.lstat(folder).st_mode) or folder.resolve().parent != root.resolve():
        raise CatalogEditError(f"{folder} is not a folder inside the catalog; refusing to write images there")
    return folder, "images/"


def _save_new(img, folder: Path, name: str) -> Path:
    """Save ``img`` as a new JPEG ``folder/name.jpg`` (another name if taken); never follows or replaces a link."""
    for n in range(100):
        target = folder / (f"{name}.jpg" if n == 0 else f"{name}-{uuid.uuid4().hex[:6]}.jpg")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                img.save(f, "JPEG", quality=92)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target
    raise CatalogEditError(f"no free file name for {name}.jpg in {folder}")


def add_product(catalog_root: str | Path, index: IndexBackend, embedder: Embedder, images: Sequence[ImageSource],
                fields: Mapping[str, str], product_id: str = "") -> EditResult:
    """Save ``images`` into the catalog, append one row per image to ``catalog.csv`` and add the product to
    ``index`` incrementally (no rebuild). Nothing is written when an image or a field is unusable, and the edit is
    undone (with one clear line) when the catalog does not read back with every new row."""
    root = Path(catalog_root)
    if not images:
        raise CatalogEditError("add at least one image of the product")
    decoded = []
    for src in images:  # ImageError for anything that is not an image; each one shrunk at once
        img = open_image(src, draft_size=MAX_SIDE)
        img = img.copy() if img is src else img  # a caller's image is never changed
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        decoded.append(img)
    with catalog_lock(root):
        p = _csv_path(root)
        catalog = load_catalog(root)
        text, encoding = _read(p)
        header = next(csv.reader(io.StringIO(text)))
        header = [c.strip() for c in header]
        pid = product_id.strip() or new_product_id(catalog)
        if not _ID_RE.match(pid):
            raise CatalogEditError(f"product id {pid!r}: use letters, digits, '_', '-' or '.' (at most 64)")
        if pid in catalog.products:
            raise CatalogEditError(f"product id {pid} is already in the catalog")
        if "product_id" not in header and len(decoded) > 1:
            raise CatalogEditError(f"{CSV_NAME} has no product_id column, so a product can have only one image")
        unknown = [k for k, v in fields.items() if v and k not in header]
        if unknown:
            raise CatalogEditError(f"unknown column(s) {', '.join(unknown)}; {CSV_NAME} has {', '.join(header)}")
        clean = {k: escape_cell(v) for k, v in fields.items() if k not in RESERVED}
        folder, rel_dir = _image_dir(root)
        saved: list[Path] = []
        written = False
        try:
            rows = []
            for n, img in enumerate(decoded):
                target = _save_new(img, folder, pid if n == 0 else f"{pid}_{n + 1}")
                saved.append(target)
                rows.append(_row_text(header, {**clean, "image": rel_dir + target.name, "product_id": pid}))
            sep = "" if not text or text.endswith(("\n", "\r")) else "\n"
            atomic_write(p, (text + sep + "".join(rows)).encode(encoding, errors="replace"))
            written = True
            catalog = load_catalog(root)
            new_rows = [r for r in catalog.rows if r.product_id == pid]
            if len(new_rows) != len(saved):
                lost = [str(s) for s in catalog.skipped if s.line and s.line > len(text.splitlines())]
                raise CatalogEditError(f"the new rows did not read back ({lost[0] if lost else 'unknown reason'}); "
                                       "nothing was added")
        except BaseException:
            if written:
                atomic_write(p, text.encode(encoding, errors="replace"))
            for s in saved:
                s.unlink(missing_ok=True)
            raise
        index, report = index.add(catalog, embedder, rows=new_rows)
    return EditResult(index, [pid], [r.image for r in new_rows], report.skipped, report.added)


def remove_products(catalog_root: str | Path, index: IndexBackend, product_ids: Sequence[str]) -> EditResult:
    """Delete the rows of ``product_ids`` from ``catalog.csv`` and hide them in ``index`` (tombstones). Every other
    line of the file is kept byte for byte (rows the catalog reader skips included).

    Image files stay on disk (nothing a user cannot get back); compact the index to drop the vectors."""
    root = Path(catalog_root)
    gone = set(product_ids)
    if not gone:
        raise CatalogEditError("choose at least one product to remove")
    with catalog_lock(root):
        p = _csv_path(root)
        catalog = load_catalog(root)
        unknown = sorted(gone - set(catalog.products))
        if unknown:
            raise CatalogEditError(f"unknown product id(s): {', '.join(unknown[:5])}")
        if not set(catalog.products) - gone:
            raise CatalogEditError("a catalog needs at least one product; add another before removing the last")
        text, encoding = _read(p)
        recs = records(text)
        header = [c.strip() for c in next(recs).cells]
        i_img = header.index("image")
        i_pid = header.index("product_id") if "product_id" in header else None
        drop: set[int] = set()  # line numbers (0-based) of the removed rows; every other line stays as it was
        for rec in recs:
            if rec.cells is None:
                continue  # an unreadable row is kept verbatim
            img = rec.cells[i_img].strip().replace("\\", "/") if len(rec.cells) > i_img else ""
            pid = rec.cells[i_pid].strip() if i_pid is not None and len(rec.cells) > i_pid else ""
            if (pid or Path(img).stem) in gone:
                drop.update(range(rec.first - 1, rec.last))
        lines = io.StringIO(text, newline="").readlines()
        kept = "".join(ln for i, ln in enumerate(lines) if i not in drop)
        atomic_write(p, kept.encode(encoding, errors="replace"))
        live = [pid for pid in product_ids if pid in index.products]
        index = index.remove(live, catalog=load_catalog(root)) if live else index
    return EditResult(index, list(product_ids))
