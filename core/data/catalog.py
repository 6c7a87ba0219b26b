"""Catalog reading: ``catalog.csv`` (or an image-folder tree) -> validated rows, skipped rows reported."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.data.csv_records import records
from core.data.digests import file_digest, file_digests

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESERVED = ("image", "product_id")
CSV_NAME = "catalog.csv"

__all__ = ["Catalog", "CatalogError", "CatalogRow", "PathChecker", "SkippedRow", "file_digest", "inside_root",
           "load_catalog"]


class CatalogError(ValueError):
    """The catalog as a whole cannot be used (missing folder, no ``image`` column, ...)."""


@dataclass(frozen=True)
class CatalogRow:
    """One usable image of one product."""

    product_id: str
    image: str  # posix path relative to the catalog root
    fields: dict[str, str]
    line: int | None = None  # CSV line number, for messages


@dataclass(frozen=True)
class SkippedRow:
    line: int | None
    image: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where} ({self.image or '-'}): {self.reason}"


@dataclass
class Catalog:
    root: Path
    rows: list[CatalogRow]
    skipped: list[SkippedRow] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def products(self) -> dict[str, dict[str, str]]:
        """product_id -> fields; the first row of a product supplies its fields."""
        out: dict[str, dict[str, str]] = {}
        for r in self.rows:
            out.setdefault(r.product_id, dict(r.fields))
        return out

    def path(self, row: CatalogRow) -> Path:
        return self.root / row.image

    def fingerprint(self) -> str:
        """Hash of the rows and the bytes of every image: changes whenever the catalog does. Image digests are
        cached per file (:mod:`core.data.digests`), so only changed files are read again."""
        digests = file_digests(self.root, [r.image for r in self.rows])
        h = hashlib.sha256()
        for r in sorted(self.rows, key=lambda r: (r.product_id, r.image)):
            h.update(repr((r.product_id, r.image, sorted(r.fields.items()))).encode())
            h.update(digests[r.image].encode())
        return h.hexdigest()[:16]


class PathChecker:
    """Checks image paths against a catalog root: one ``realpath`` per folder and one ``lstat`` per file (or one
    listing of a folder many rows use), so 10^5 rows take about a second. Nothing whose real path leaves the root
    is accepted."""

    LIST_AFTER = 64  # lookups in one folder before it is listed once instead

    def __init__(self, root: Path):
        self.root = str(root)
        self.real = os.path.realpath(root)
        self._prefix = self.real.rstrip(os.sep) + os.sep
        self._dirs: dict[str, str] = {}
        self._hits: dict[str, int] = {}
        self._listed: dict[str, dict[str, int]] = {}

    def inside(self, real: str) -> bool:
        """Whether the real path ``real`` is the root or under it."""
        return real == self.real or real.startswith(self._prefix)

    def _mode(self, real_dir: str, name: str) -> int:
        """``lstat`` mode bits of ``real_dir/name`` (0 when missing)."""
        listing = self._listed.get(real_dir)
        if listing is None:
            self._hits[real_dir] = hits = self._hits.get(real_dir, 0) + 1
            if hits < self.LIST_AFTER:
                try:
                    return os.lstat(f"{real_dir}/{name}").st_mode
                except (OSError, ValueError):
                    return 0
            try:
                with os.scandir(real_dir) as it:
                    listing = {e.name: stat.S_IFLNK if e.is_symlink() else stat.S_IFREG
                               if e.is_file(follow_symlinks=False) else stat.S_IFDIR for e in it}
            except OSError:
                listing = {}
            self._listed[real_dir] = listing
        return listing.get(name, 0)

    def check(self, rel: str) -> str | None:
        """Why ``rel`` (posix, relative to the root) is not a usable file inside the root, or None."""
        if not rel:
            return "empty image path"
        if "\x00" in rel:
            return "image path contains a NUL byte"
        if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
            return "absolute path is not allowed"
        folder, _, name = rel.rpartition("/")
        real_dir = self._dirs.get(folder)
        if real_dir is None:
            real_dir = self._dirs[folder] = os.path.realpath(os.path.join(self.root, folder))
        if not self.inside(real_dir):
            return "path leaves the catalog folder"
        mode = self._mode(real_dir, name) if name not in ("", ".", "..") else stat.S_IFLNK
        if stat.S_ISLNK(mode):
            path = os.path.realpath(f"{real_dir}/{name}")
            if not self.inside(path):
                return "path leaves the catalog folder"
            try:
                mode = os.stat(path).st_mode
            except (OSError, ValueError):
                return "image file not found"
        return None if stat.S_ISREG(mode) else "image file not found"


def inside_root(root: Path, rel: str) -> tuple[Path | None, str | None]:
    """Resolve ``rel`` under ``root``; return (path, None) or (None, reason)."""
    reason = PathChecker(root).check(rel)
    return (None, reason) if reason else (root / rel, None)


def _suffix_stem(name: str) -> tuple[str, str]:
    """``(suffix, stem)`` of a file name, as :mod:`pathlib` splits it."""
    i = name.rfind(".")
    return (name[i:], name[:i]) if 0 < i < len(name) - 1 else ("", name)


def _posix(rel: str) -> str:
    """``rel`` normalised as ``Path(rel).as_posix()`` would (``./``, ``//`` and trailing ``/`` removed)."""
    if "//" in rel or "/./" in rel or rel.startswith("./") or rel.endswith(("/", "/.")) or rel == ".":
        return PurePosixPath(rel).as_posix()
    return rel


def _read_csv_text(path: Path, warnings: list[str]) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        warnings.append(f"{path.name} is not UTF-8; read it as Windows-1252 (save it as UTF-8 to silence this)")
        return data.decode("cp1252", errors="replace")


def _quoted(columns: list[str], most: int = 6, width: int = 24) -> str:
    """A short list of column names for a message (a file that is no catalog is not quoted at length)."""
    names = [c if len(c) <= width else c[: width - 1] + "…" for c in columns[:most]]
    return ", ".join(names + (["…"] if len(columns) > most else [])) or "none"


def read_csv_catalog(root: Path, csv_path: Path | None = None) -> Catalog:
    """Rows of ``catalog.csv``; every unusable row (quoting mistakes included) is skipped with its line number."""
    csv_path = csv_path or root / CSV_NAME
    if not PathChecker(root).inside(os.path.realpath(csv_path)):
        raise CatalogError(f"{csv_path.name} is a link that leads outside the catalog folder; it is not read")
    warnings: list[str] = []
    recs = records(_read_csv_text(csv_path, warnings))
    head = next(recs, None)
    if head is not None and head.cells is None:
        raise CatalogError(f"{csv_path.name} line {head.first}: {head.error}")
    columns = [c.strip() for c in (head.cells if head else [])]
    if "image" not in columns:
        raise CatalogError(f"{csv_path.name} has no 'image' column (columns: {_quoted(columns)})")
    if len(set(columns)) != len(columns):
        raise CatalogError(f"{csv_path.name} has duplicate column names")
    n, i_img = len(columns), columns.index("image")
    i_pid = columns.index("product_id") if "product_id" in columns else None
    kept = [(i, c) for i, c in enumerate(columns) if c not in RESERVED]
    checker = PathChecker(root)
    rows: list[CatalogRow] = []
    skipped: list[SkippedRow] = []
    spans: list[str] = []
    seen: set[tuple[str, str]] = set()
    for rec in recs:
        line, cells = rec.first, rec.cells
        if cells is None:
            skipped.append(SkippedRow(line, "", rec.error))
            continue
        image = cells[i_img].strip() if i_img < len(cells) else ""
        if len(cells) > n:
            skipped.append(SkippedRow(line, image, "row has more cells than the header"))
            continue
        if rec.last > line:
            if len(cells) < n:
                skipped.append(SkippedRow(line, image, f"a quoted cell runs over lines {line}-{rec.last} and the "
                                          f"row has {len(cells)} of {n} cells (a quote left open?)"))
                continue
            spans.append(f"{line}-{rec.last}")
        cells = [c.strip() for c in cells] + [""] * (n - len(cells))
        rel = cells[i_img].replace("\\", "/")
        suffix, stem = _suffix_stem(rel.rpartition("/")[2])
        pid = (cells[i_pid] if i_pid is not None else "") or stem
        reason = checker.check(rel)
        if reason:
            skipped.append(SkippedRow(line, rel, reason))
            continue
        if suffix.lower() not in IMAGE_EXTS:
            skipped.append(SkippedRow(line, rel, f"not an image extension ({suffix or 'none'})"))
            continue
        key = (pid, _posix(rel))
        if key in seen:
            skipped.append(SkippedRow(line, rel, f"duplicate row for product {pid}"))
            continue
        seen.add(key)
        rows.append(CatalogRow(pid, key[1], {c: cells[i] for i, c in kept}, line))
    if spans:
        warnings.append(f"{len(spans)} row(s) have a quoted cell that spans lines (lines {', '.join(spans[:3])}"
                        f"{', ...' if len(spans) > 3 else ''}); check that no quote was left open")
    return Catalog(root, rows, skipped, [c for c in columns if c not in RESERVED], warnings)


def read_folder_catalog(root: Path) -> Catalog:
    """``<category>/<image>`` (or images at the top level, without a category)."""
    rows: list[CatalogRow] = []
    skipped: list[SkippedRow] = []
    seen: set[str] = set()
    checker = PathChecker(root)
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS:
            continue
        rel = p.relative_to(root).as_posix()
        parts = rel.split("/")
        if parts[0] == "queries" or len(parts) > 2:
            continue
        reason = checker.check(rel)
        if reason:
            skipped.append(SkippedRow(None, rel, reason))
            continue
        category = parts[0] if len(parts) == 2 else ""
        pid = p.stem if p.stem not in seen else f"{category}/{p.stem}"
        if pid in seen:
            skipped.append(SkippedRow(None, rel, f"duplicate product id {pid}"))
            continue
        seen.add(pid)
        rows.append(CatalogRow(pid, rel, {"title": p.stem, "category": category}))
    return Catalog(root, rows, skipped, ["title", "category"])


def load_catalog(root: str | Path) -> Catalog:
    """Read a catalog folder: ``catalog.csv`` if present, else the image-folder layout."""
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"catalog folder not found: {root}")
    cat = read_csv_catalog(root) if (root / CSV_NAME).is_file() else read_folder_catalog(root)
    if not cat.rows:
        detail = f" ({len(cat.skipped)} rows skipped: {cat.skipped[0]})" if cat.skipped else ""
        raise CatalogError(f"catalog {root} has no usable images{detail}")
    return cat


def product_columns(products: dict[str, dict[str, str]]) -> list[str]:
    """The field columns (besides ``product_id``) that products have, sorted."""
    return sorted({c for f in products.values() for c in f})


def column_values(products: dict[str, dict[str, str]], column: str) -> list[str]:
    """The non-empty values of ``column``, one per product that has one."""
    return [v for f in products.values() if (v := f.get(column, ""))]


def numeric_columns(products: dict[str, dict[str, str]], columns: list[str]) -> list[str]:
    """Columns whose every non-empty value parses as a number."""
    out = []
    for c in columns:
        vals = column_values(products, c)
        if vals and all(is_number(v) for v in vals):
            out.append(c)
    return out


def is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
