"""Importers for public datasets: ``python -m core import grocery|clothing PATH [--out DIR] [--download]``.

Each writes, under ``DIR`` (default ``cache_dir()/imports/<name>``):

- ``catalog/`` — ``catalog.csv`` and its images (hard links when on the same filesystem, else copies),
- ``views/`` — labelled training photos with ``views.csv`` (``image,product_id,category``), where the dataset
  has product-level photos (grocery),
- ``queries-<split>.csv`` — ``image,product_id,category`` per split, image paths relative to ``DIR``.

The app offers every import found under ``cache_dir()/imports`` as ``Dataset: <name>``.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.config.store import atomic_path, link_or_copy
from core.data.catalog import IMAGE_EXTS

URLS = {
    "grocery": "https://github.com/marcusklasson/GroceryStoreDataset/archive/refs/heads/master.zip",
    "clothing": "https://github.com/alexeygrigorev/clothing-dataset-small/archive/refs/heads/master.zip",
}


@dataclass
class ImportReport:
    out: Path
    products: int = 0
    views: int = 0
    queries: dict[str, int] = field(default_factory=dict)
    categories: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        q = ", ".join(f"{n} {s} queries" for s, n in self.queries.items())
        return f"{self.products} products in {self.categories} categories, {self.views} training views, {q}"


def default_out(name: str) -> Path:
    from core.config.paths import cache_dir

    return cache_dir() / "imports" / name


def place(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (same filesystem), else copy it; an identical existing file is kept."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.samefile(src) or dst.stat().st_size == src.stat().st_size:
            return
        dst.unlink()
    link_or_copy(src, dst)


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> int:
    """Write atomically; returns the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for r in rows:
            w.writerow(r)
            n += 1
    return n


def _title(name: str) -> str:
    return name.replace("-", " ").replace("_", " ").strip()


# --- GroceryStoreDataset ---------------------------------------------------------------------------------------


def _grocery_root(path: Path) -> Path:
    for cand in (path, path / "dataset", *path.glob("*/dataset")):
        if (cand / "classes.csv").is_file():
            return cand
    raise ValueError(f"{path}: not a GroceryStoreDataset folder (no dataset/classes.csv)")


def import_grocery(path: str | Path, out: str | Path | None = None, *, views_in_catalog: bool = False) -> ImportReport:
    """GroceryStoreDataset -> catalog of 81 products (iconic image, description), train views, queries.

    ``views_in_catalog`` also lists every train-split shop photo as another image of its product in the
    catalog (``kind=view``; the iconic image is ``kind=iconic``), so search can match a shopper's photo to the
    nearest known photo of each product."""
    root = _grocery_root(Path(path).expanduser())
    out = Path(out).expanduser() if out else default_out("grocery")
    rep = ImportReport(out)
    with open(root / "classes.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))[1:]
    by_id: dict[str, tuple[str, str]] = {}
    catalog = []
    for r in rows:
        if len(r) < 6:
            continue
        name, cid, coarse, _, iconic, desc = (c.strip() for c in r[:6])
        by_id[cid] = (name, coarse)
        src = root / iconic.lstrip("/")
        if not src.is_file():
            rep.skipped.append(f"{name}: iconic image missing ({iconic})")
            continue
        rel = f"images/{name}{src.suffix.lower()}"
        place(src, out / "catalog" / rel)
        dpath = root / desc.lstrip("/")
        text = dpath.read_text(encoding="utf-8", errors="replace").strip() if dpath.is_file() else ""
        catalog.append({"product_id": name, "image": rel, "title": _title(name), "category": coarse,
                        "description": " ".join(text.split()), "class_id": cid, "kind": "iconic"})
    rep.products = len(catalog)
    rep.categories = len({c["category"] for c in catalog})
    if not catalog:
        raise ValueError(f"{root}: no usable class in classes.csv")
    fields_of = {c["product_id"]: c for c in catalog}
    for split_file in sorted(root.glob("*.txt")):
        split = split_file.stem
        if split not in ("train", "val", "test"):
            continue
        items = []
        for line_no, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), 1):
            parts = [p.strip() for p in line.split(",")]
            if len(parts) < 2 or not parts[0]:
                continue
            src = root / parts[0]
            if parts[1] not in by_id or not src.is_file():
                why = "unknown class" if parts[1] not in by_id else "image missing"
                rep.skipped.append(f"{split_file.name} line {line_no}: {why}")
                continue
            name, coarse = by_id[parts[1]]
            items.append((src, Path(parts[0]), name, coarse))
        if split == "train":  # the train split becomes labelled training views; its queries point at them
            for src, rel, _, _ in items:
                place(src, out / "views" / rel)
            rows_v = [{"image": rel.as_posix(), "product_id": n, "category": c} for _, rel, n, c in items]
            rep.views = _write_csv(out / "views" / "views.csv", ["image", "product_id", "category"], rows_v)
            if views_in_catalog:
                for src, rel, name, _ in items:
                    place(src, out / "catalog" / "views" / rel)
                    catalog.append({**fields_of[name], "image": f"views/{rel.as_posix()}", "kind": "view"})
            q = [{"image": f"views/{rel.as_posix()}", "product_id": n, "category": c} for _, rel, n, c in items]
        else:
            for src, rel, _, _ in items:
                place(src, out / "queries" / rel)
            q = [{"image": f"queries/{rel.as_posix()}", "product_id": n, "category": c} for _, rel, n, c in items]
        rep.queries[split] = _write_csv(out / f"queries-{split}.csv", ["image", "product_id", "category"], q)
    _write_csv(out / "catalog" / "catalog.csv",
               ["product_id", "image", "title", "category", "description", "class_id", "kind"], catalog)
    return rep


# --- clothing-dataset-small ------------------------------------------------------------------------------------


def _clothing_root(path: Path) -> Path:
    for cand in (path, *path.glob("*")):
        if (cand / "train").is_dir() and any(d.is_dir() for d in (cand / "train").iterdir()):
            return cand
    raise ValueError(f"{path}: not a clothing dataset folder (no train/<category>/ images)")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def import_clothing(path: str | Path, out: str | Path | None = None) -> ImportReport:
    """clothing-dataset-small -> catalog of the train photos (category labels), validation/test as queries."""
    root = _clothing_root(Path(path).expanduser())
    out = Path(out).expanduser() if out else default_out("clothing")
    rep = ImportReport(out)
    catalog = []
    for src in _images(root / "train"):
        cat = src.parent.name
        rel = f"images/{cat}/{src.name}"
        place(src, out / "catalog" / rel)
        catalog.append({"product_id": f"{cat}-{src.stem}", "image": rel, "title": f"{_title(cat)} {src.stem[:8]}",
                        "category": cat})
    if not catalog:
        raise ValueError(f"{root}: no images under train/<category>/")
    rep.products = _write_csv(out / "catalog" / "catalog.csv", ["product_id", "image", "title", "category"], catalog)
    rep.categories = len({c["category"] for c in catalog})
    for split in ("validation", "val", "test"):
        if not (root / split).is_dir():
            continue
        q = []
        for src in _images(root / split):
            rel = f"queries/{split}/{src.parent.name}/{src.name}"
            place(src, out / rel)
            q.append({"image": rel, "product_id": "", "category": src.parent.name})
        rep.queries[split] = _write_csv(out / f"queries-{split}.csv", ["image", "product_id", "category"], q)
    return rep


IMPORTERS = {"grocery": import_grocery, "clothing": import_clothing}


def download(name: str, dest: Path | None = None, timeout: float = 60) -> Path:
    """Fetch and unpack the public dataset ``name`` (GitHub zip); raises ValueError when offline."""
    from core.config.paths import cache_dir

    dest = dest or cache_dir() / "downloads" / name
    if dest.is_dir() and any(dest.iterdir()):
        return dest
    try:
        with urllib.request.urlopen(URLS[name], timeout=timeout) as r:  # noqa: S310 - fixed https URL
            data = r.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise ValueError(f"could not download the {name} dataset ({e}); are you offline? Pass a local PATH") from None
    with atomic_path(dest) as tmp:
        zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)
    return dest
