"""Edit a catalog on disk: add a product (images + fields) or remove products, and update its index in place.

``catalog.csv`` is rewritten atomically (``core.config.store.atomic_write``) under a per-catalog lock, so a crash or
a second writer never leaves a half-written file. Cells are escaped so spreadsheets do not run them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.config.paths import cache_dir
from core.config.store import atomic_write, held_lock
from core.data.catalog import CSV_NAME, RESERVED, Catalog, CatalogError, load_catalog
from core.data.images import ImageSource, open_image
from core.embedding import Embedder
from core.index.product_index import ProductIndex

#: Longest side of an added image as stored in the catalog.
MAX_SIDE = 2048
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CatalogEditError(CatalogError):
    """An edit that cannot be made (bad product id, unknown column, a folder catalog, ...)."""


@dataclass
class EditResult:
    index: ProductIndex
    product_ids: list[str]
    images: list[str] = field(default_factory=list)  # paths relative to the catalog root
    skipped: list[str] = field(default_factory=list)


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
    return root / "images", "images/"


def add_product(catalog_root: str | Path, index: ProductIndex, embedder: Embedder, images: Sequence[ImageSource],
                fields: Mapping[str, str], product_id: str = "") -> EditResult:
    """Save ``images`` into the catalog, append one row per image to ``catalog.csv`` and add the product to
    ``index`` incrementally (no rebuild). Nothing is written when an image or a field is unusable."""
    root = Path(catalog_root)
    if not images:
        raise CatalogEditError("add at least one image of the product")
    decoded = [open_image(src) for src in images]  # ImageError for anything that is not an image
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
        folder.mkdir(parents=True, exist_ok=True)
        saved: list[Path] = []
        rows = []
        try:
            for n, img in enumerate(decoded):
                name = pid if n == 0 else f"{pid}_{n + 1}"
                target = folder / f"{name}.jpg"
                if target.exists():
                    target = folder / f"{name}-{uuid.uuid4().hex[:6]}.jpg"
                img = img.copy()
                img.thumbnail((MAX_SIDE, MAX_SIDE))
                img.save(target, "JPEG", quality=92)
                saved.append(target)
                rows.append(_row_text(header, {**clean, "image": rel_dir + target.name, "product_id": pid}))
            sep = "" if not text or text.endswith(("\n", "\r")) else "\n"
            atomic_write(p, (text + sep + "".join(rows)).encode(encoding, errors="replace"))
        except BaseException:
            for s in saved:
                s.unlink(missing_ok=True)
            raise
        catalog = load_catalog(root)
        new_rows = [r for r in catalog.rows if r.product_id == pid]
        index, report = index.add(catalog, embedder, rows=new_rows)
    return EditResult(index, [pid], [r.image for r in new_rows], report.skipped)


def remove_products(catalog_root: str | Path, index: ProductIndex, product_ids: Sequence[str]) -> EditResult:
    """Delete the rows of ``product_ids`` from ``catalog.csv`` and hide them in ``index`` (tombstones).

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
        reader = csv.reader(io.StringIO(text, newline=""))
        records = list(reader)
        header = [c.strip() for c in records[0]]
        i_img = header.index("image")
        i_pid = header.index("product_id") if "product_id" in header else None
        keep = [records[0]]
        for rec in records[1:]:
            if not rec:
                continue
            img = rec[i_img].strip().replace("\\", "/") if len(rec) > i_img else ""
            pid = rec[i_pid].strip() if i_pid is not None and len(rec) > i_pid else ""
            pid = pid or Path(img).stem
            if pid not in gone:
                keep.append(rec)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(keep)
        atomic_write(p, buf.getvalue().encode(encoding, errors="replace"))
        live = [pid for pid in product_ids if pid in index.products]
        index = index.remove(live, catalog=load_catalog(root)) if live else index
    return EditResult(index, list(product_ids))
