"""Labelled query sets: a queries CSV, or an image-folder tree ``<category>/<image>`` (label = folder)."""

from __future__ import annotations

import csv
from pathlib import Path

from core.data.catalog import IMAGE_EXTS, inside_root
from core.data.csv_records import records
from core.data.query_sets import query_sets


def read_queries(path: str | Path, label: str = "product_id", *,
                 root: str | Path | None = None) -> tuple[list[tuple[Path, str]], list[str]]:
    """Rows of ``image,<label>``; images are relative to ``root`` (default: the CSV's folder) and may not
    leave it. Unusable rows are reported."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    if not base.is_dir():
        raise ValueError(f"queries root folder not found: {base}")
    if not path.is_file():
        raise ValueError(f"queries file not found: {path}")
    recs = records(path.read_bytes().decode("utf-8-sig"))
    head = next(recs, None)
    if head is not None and head.cells is None:
        raise ValueError(f"{path.name} line 1: {head.error}")
    columns = head.cells if head else []
    if "image" not in columns or label not in columns:
        raise ValueError(f"{path.name} needs columns 'image' and '{label}' (has {columns})")
    i_img, i_label = columns.index("image"), columns.index(label)
    out, skipped = [], []
    for rec in recs:
        if rec.cells is None:
            skipped.append(f"line {rec.first} (-): {rec.error}")
            continue
        image = rec.cells[i_img].strip() if i_img < len(rec.cells) else ""
        p, reason = inside_root(base, image)
        if reason:
            skipped.append(f"line {rec.first} ({image}): {reason}")
        else:
            out.append((p, rec.cells[i_label].strip() if i_label < len(rec.cells) else ""))
    return out, skipped


def folder_queries(tree: str | Path) -> list[tuple[Path, str]]:
    """``(image, category)`` for every image in ``tree/<category>/``; nothing outside ``tree`` is followed."""
    tree = Path(tree)
    if not tree.is_dir():
        raise ValueError(f"queries folder not found: {tree}")
    out = []
    for p in sorted(tree.glob("*/*")):
        if p.suffix.lower() in IMAGE_EXTS and inside_root(tree, p.relative_to(tree).as_posix())[1] is None:
            out.append((p, p.parent.name))
    if not out:
        raise ValueError(f"{tree} has no <category>/<image> files")
    return out


def write_folder_queries(tree: str | Path, out_csv: str | Path) -> Path:
    """Write ``image,category`` rows for an image-folder tree; image paths are relative to ``tree``, so read
    the CSV back with ``root=tree`` (the CSV itself can live anywhere, e.g. a temp folder)."""
    tree, out_csv = Path(tree), Path(out_csv)
    rows = folder_queries(tree)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "category"])
        for p, cat in rows:
            w.writerow([p.relative_to(tree).as_posix(), cat])
    return out_csv


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def load_labelled_queries(source: str | Path, label: str, products: dict[str, dict[str, str]], *,
                          root: str | Path | None = None) -> tuple[list[tuple[Path, str]], list[str]]:
    """``(image, label value)`` rows and skipped-row messages.

    ``source`` is a folder tree (label = folder name, only for a category-like label) or a CSV. A CSV
    without the ``label`` column but with ``product_id`` gets each query's label from that product's field.
    """
    source = Path(source)
    if source.is_dir():
        if label == "product_id":
            raise ValueError("a folder of queries only says each image's category; use --label category")
        return folder_queries(source), []
    if not source.is_file():
        raise ValueError(f"queries file not found: {source}")
    cols = [c.strip() for c in _header(source)]
    if label in cols or "product_id" not in cols:
        return read_queries(source, label, root=root)
    rows, skipped = read_queries(source, "product_id", root=root)
    out = []
    for p, pid in rows:
        value = products.get(pid, {}).get(label, "")
        if value:
            out.append((p, value))
        else:
            skipped.append(f"{p.name}: product {pid} is not in the index or has no {label}")
    return out, skipped


def labelled_query_sets(catalog_dir: str | Path) -> list[Path]:
    """The CSV files and folder trees of a catalog's labelled query sets (see :func:`query_sets`)."""
    return [s.path for s in query_sets(catalog_dir)]
