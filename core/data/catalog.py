"""Catalog reading: ``catalog.csv`` (or an image-folder tree) -> validated rows, skipped rows reported."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESERVED = ("image", "product_id")
CSV_NAME = "catalog.csv"


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
        """Hash of the rows and the bytes of every image: changes whenever the catalog does."""
        h = hashlib.sha256()
        for r in sorted(self.rows, key=lambda r: (r.product_id, r.image)):
            h.update(repr((r.product_id, r.image, sorted(r.fields.items()))).encode())
            h.update(file_digest(self.path(r)).encode())
        return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def inside_root(root: Path, rel: str) -> tuple[Path | None, str | None]:
    """Resolve ``rel`` under ``root``; return (path, None) or (None, reason)."""
    if not rel:
        return None, "empty image path"
    if "\x00" in rel:
        return None, "image path contains a NUL byte"
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return None, "absolute path is not allowed"
    p = root / rel
    try:
        real = p.resolve(strict=False)
    except (OSError, RuntimeError):
        return None, "path cannot be resolved"
    if not real.is_relative_to(root.resolve()):
        return None, "path leaves the catalog folder"
    if not real.is_file():
        return None, "image file not found"
    return p, None


def _read_csv_text(path: Path, warnings: list[str]) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        warnings.append(f"{path.name} is not UTF-8; read it as Windows-1252 (save it as UTF-8 to silence this)")
        return data.decode("cp1252", errors="replace")


def read_csv_catalog(root: Path, csv_path: Path | None = None) -> Catalog:
    csv_path = csv_path or root / CSV_NAME
    warnings: list[str] = []
    text = _read_csv_text(csv_path, warnings)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if "image" not in columns:
        raise CatalogError(f"{csv_path.name} has no 'image' column (columns: {', '.join(columns) or 'none'})")
    if len(set(columns)) != len(columns):
        raise CatalogError(f"{csv_path.name} has duplicate column names")
    reader.fieldnames = columns
    rows: list[CatalogRow] = []
    skipped: list[SkippedRow] = []
    seen: set[tuple[str, str]] = set()
    for raw in reader:
        line = reader.line_num
        if None in raw:  # more cells than header columns
            skipped.append(SkippedRow(line, raw.get("image") or "", "row has more cells than the header"))
            continue
        rec = {k: (v or "").strip() for k, v in raw.items()}
        rel = rec.pop("image").replace("\\", "/")
        pid = rec.pop("product_id", "") or Path(rel).stem
        path, reason = inside_root(root, rel)
        if reason:
            skipped.append(SkippedRow(line, rel, reason))
            continue
        if Path(rel).suffix.lower() not in IMAGE_EXTS:
            skipped.append(SkippedRow(line, rel, f"not an image extension ({Path(rel).suffix or 'none'})"))
            continue
        key = (pid, Path(rel).as_posix())
        if key in seen:
            skipped.append(SkippedRow(line, rel, f"duplicate row for product {pid}"))
            continue
        seen.add(key)
        rows.append(CatalogRow(pid, Path(rel).as_posix(), rec, line))
    return Catalog(root, rows, skipped, [c for c in columns if c not in RESERVED], warnings)


def read_folder_catalog(root: Path) -> Catalog:
    """``<category>/<image>`` (or images at the top level, without a category)."""
    rows: list[CatalogRow] = []
    skipped: list[SkippedRow] = []
    seen: set[str] = set()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS:
            continue
        rel = p.relative_to(root).as_posix()
        parts = rel.split("/")
        if parts[0] == "queries" or len(parts) > 2:
            continue
        _, reason = inside_root(root, rel)
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
