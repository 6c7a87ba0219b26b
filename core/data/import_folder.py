"""Import any catalog folder (``catalog.csv`` or ``<category>/<image>`` folders) or catalog CSV into the cache, so
the app offers it like a dataset import: ``cache_dir()/imports/<name>/catalog``; the source's ``queries.csv`` and
``queries/`` come along (example photos, labelled queries)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from core.config.progress import Progress
from core.data.catalog import CSV_NAME, CatalogError, load_catalog, read_csv_catalog
from core.data.import_datasets import ImportReport, _write_csv, default_out, place

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def check_name(name: str) -> str:
    """A dataset name usable as a folder and in a link (letters, digits, ``_.-``; at most 40)."""
    name = name.strip()
    if not NAME.match(name) or name in (".", ".."):
        raise CatalogError(f"dataset name {name!r}: use 1-40 letters, digits, '_', '.' or '-'")
    return name


def import_folder(source: str | Path, name: str, out: str | Path | None = None, *,
                  progress: Progress | None = None) -> ImportReport:
    """Copy (hard-link where possible) the catalog at ``source`` under ``out`` (default: the cache's imports);
    an existing import of that name is replaced only once the new one is complete."""
    src = Path(source).expanduser()
    cat = read_csv_catalog(src.parent, src) if src.is_file() else load_catalog(src)
    out = Path(out) if out else default_out(check_name(name))
    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    rep = ImportReport(out, skipped=[str(s) for s in cat.skipped])
    rows = []
    for i, r in enumerate(cat.rows):
        place(cat.path(r), tmp / "catalog" / r.image)
        rows.append({"product_id": r.product_id, "image": r.image, **r.fields})
        if progress:
            progress(i + 1, len(cat.rows))
    _write_csv(tmp / "catalog" / CSV_NAME, ["product_id", "image", *cat.columns], rows)
    rep.products, rep.categories = len(cat.products), len({f.get("category", "") for f in cat.products.values()})
    root = src.parent if src.is_file() else src
    if (root / "queries.csv").is_file():
        shutil.copy2(root / "queries.csv", tmp / "catalog" / "queries.csv")
        for p in (root / "queries").glob("*") if (root / "queries").is_dir() else []:
            if p.is_file():
                place(p, tmp / "catalog" / "queries" / p.name)
        rep.queries["queries.csv"] = sum(1 for _ in open(root / "queries.csv", encoding="utf-8-sig")) - 1
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return rep
