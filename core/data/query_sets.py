"""A catalog's labelled query sets and example photos, found where the importers and the sample put them.

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

from core.data.catalog import IMAGE_EXTS

#: held-out folder trees looked for beside a catalog folder
SPLITS = ("validation", "val", "test")


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
            return self.path.name if self.path.name in SPLITS else ""
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
    trees = [root / "queries", *(root.parent / name for name in SPLITS)]
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
