"""A catalog's labelled query sets (shop photos with their product or category), found where the importers and the
sample put them, read row by row, and its example photos.

- ``<catalog>/queries*.csv`` (the sample's ``queries.csv``) and ``<catalog>/../queries-<split>.csv`` (what
  ``python -m core import`` writes beside the catalog folder): ``image,<label>...`` rows, image paths relative
  to the CSV's folder;
- ``<catalog>/queries/<category>/<image>``, and a held-out ``validation`` (``val``, ``test``) tree beside the
  catalog folder (a dataset's own layout, e.g. clothing's ``train/`` as the catalog): folder trees labelled by
  category.

Flat images in ``<catalog>/queries/`` are example photos without labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from core.data.catalog import IMAGE_EXTS, inside_root
from core.data.csv_records import records

#: held-out folder trees looked for beside a catalog folder
HELD_OUT_FOLDERS = ("validation", "val", "test")


@dataclass(frozen=True)
class QuerySet:
    name: str  # how to show it, e.g. "queries-val.csv" or "queries/ (folders)"
    path: Path  # the CSV, or the folder tree
    kind: str  # "csv" | "folder"
    labels: tuple[str, ...]  # label columns with values (product_id, category, ...)
    n: int  # rows (images)

    @property
    def root(self) -> Path:
        """The folder its image paths are relative to."""
        return self.path if self.kind == "folder" else self.path.parent

    @property
    def split(self) -> str:
        """``train``, ``val``, ``test``... from the name (``queries-val.csv`` -> ``val``, ``validation/``), else
        ``""``."""
        if self.kind == "folder":
            return self.path.name if self.path.name in HELD_OUT_FOLDERS else ""
        return self.path.stem.split("-", 1)[1] if "-" in self.path.stem else ""


def _csv_set(path: Path) -> QuerySet | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = [c.strip() for c in reader.fieldnames or []]
            if "image" not in cols:
                return None
            reader.fieldnames = cols
            filled: set[str] = set()
            n = 0
            for row in reader:
                n += 1
                filled.update(c for c in cols if c != "image" and (row.get(c) or "").strip())
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    labels = tuple(c for c in cols if c in filled)
    return QuerySet(path.name, path, "csv", labels, n) if n and labels else None


def _folder_set(tree: Path) -> QuerySet | None:
    n = sum(1 for p in tree.glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    return QuerySet(f"{tree.name}/ (folders)", tree, "folder", ("category",), n) if n else None


def query_sets(catalog_root: str | Path) -> list[QuerySet]:
    """Every labelled query set of a catalog folder: CSV files, then folder trees (see the module doc)."""
    root = Path(catalog_root)
    csvs = sorted({*root.glob("queries*.csv"), *root.parent.glob("queries-*.csv")})
    out = [s for s in map(_csv_set, csvs) if s is not None]
    trees = [root / "queries", *(root.parent / name for name in HELD_OUT_FOLDERS)]
    for tree in trees:
        if tree.is_dir() and tree.resolve() != root.resolve() and (s := _folder_set(tree)) is not None:
            out.append(s)
    return out


def _rows(qs: QuerySet) -> list[tuple[Path, str]]:
    """(image path, first label) of a set, in file order; rows whose image is missing are left out."""
    if qs.kind == "folder":
        pairs = [(p, p.parent.name) for p in sorted(qs.path.glob("*/*")) if p.suffix.lower() in IMAGE_EXTS]
    else:
        with open(qs.path, newline="", encoding="utf-8-sig") as f:
            pairs = [(qs.root / (r.get("image") or "").strip(), (r.get(qs.labels[0]) or "").strip())
                     for r in csv.DictReader(f)]
    return [(p, lab) for p, lab in pairs if p.is_file() and p.resolve().is_relative_to(qs.root.resolve())]


def set_photos(qs: QuerySet) -> list[Path]:
    """The image paths of a set, in file order (rows whose image is missing are left out)."""
    return [p for p, _ in _rows(qs)]


def example_photos(catalog_root: str | Path, n: int = 12) -> list[Path]:
    """Example shopper photos: every image in the catalog's flat ``queries/`` folder, sorted by name; else every
    row of a ``queries-examples.csv`` beside it, in file order (the demo's); else up to ``n`` from its query sets
    (validation sets first), one per label, spread over the labels."""
    d = Path(catalog_root) / "queries"
    flat = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS) if d.is_dir() else []
    if flat:
        return flat
    chosen = [s for s in query_sets(catalog_root) if s.split == "examples"]  # the demo's: all, in file order
    if chosen and (rows := _rows(chosen[0])):
        return [p for p, _ in rows]
    sets = sorted(query_sets(catalog_root), key=lambda s: (s.split == "train", s.name))
    for qs in sets:
        first: dict[str, Path] = {}
        for p, lab in _rows(qs):
            first.setdefault(lab, p)
        if first:
            picks = list(first.values())
            step = max(1, len(picks) // n)
            return picks[::step][:n]
    return []


def example_labels(catalog_root: str | Path) -> dict[str, str]:
    """File name -> product of each labelled example photo of a ``queries-examples.csv`` beside the catalog (the
    demo's), so that a page can tell whether an example was found; empty when there is none."""
    chosen = [s for s in query_sets(catalog_root) if s.split == "examples" and "product_id" in s.labels]
    if not chosen:
        return {}
    with open(chosen[0].path, newline="", encoding="utf-8-sig") as f:
        rows = [(Path((r.get("image") or "").strip()).name, (r.get("product_id") or "").strip())
                for r in csv.DictReader(f)]
    return {name: pid for name, pid in rows if name and pid}


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
