"""Which catalogs an app may open: those found under an allow-list of root folders (``VPS_CATALOG_ROOTS``).

A root is a catalog itself (it has ``catalog.csv``), or holds catalogs one level down: ``<name>/catalog.csv``
or an import's ``<name>/catalog/catalog.csv``. The default roots are the bundled sample catalog, the real-photo demo
and the imports in the cache, i.e. exactly what :func:`core.index.workspace.catalog_keys` offers.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config import settings
from core.config.paths import DEMO_ROOT, SAMPLE_CATALOG, cache_dir, slug
from core.data.catalog import CSV_NAME
from core.index.workspace import DEMO_KEY, SAMPLE_KEY


def catalog_roots(text: str | None = None) -> list[Path]:
    """The allow-list: ``text`` (or ``$VPS_CATALOG_ROOTS``), folders separated by ``os.pathsep``; by default the
    sample catalog, the real-photo demo and the cache's imports."""
    text = settings.get("catalog_roots") if text is None else text
    roots = [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()]
    return roots or [SAMPLE_CATALOG, DEMO_ROOT, cache_dir() / "imports"]


def _inside(path: Path, real_root: str) -> bool:
    """Whether the real path of ``path`` (links and ``..`` resolved) is ``real_root`` or under it."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _catalog_in(d: Path, real_root: str) -> Path | None:
    """The catalog folder of ``d`` (itself or ``d/catalog``), if it and its ``catalog.csv`` really lie under the
    root: a link leading elsewhere is not offered (and so never read)."""
    for cand in (d, d / "catalog"):
        if (cand / CSV_NAME).is_file() and _inside(cand, real_root) and _inside(cand / CSV_NAME, real_root):
            return cand
    return None


def catalogs_under(roots: list[Path]) -> dict[str, Path]:
    """Catalog key -> folder for every catalog under ``roots`` (the first of two with the same key wins). A catalog
    folder or file whose real path leaves its root is left out."""
    out: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        real_root = os.path.realpath(root)
        if (found := _catalog_in(root, real_root)) is not None:
            key = {SAMPLE_CATALOG.resolve(): SAMPLE_KEY, DEMO_ROOT.resolve(): DEMO_KEY}.get(root.resolve(),
                                                                                        slug(root.name))
            out.setdefault(key, found)
            continue
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (found := _catalog_in(d, real_root)) is not None:
                out.setdefault(slug(d.name), found)
    return out


def is_allowed(folder: str | Path, allowed: dict[str, Path]) -> bool:
    """Whether ``folder`` is one of the ``allowed`` catalogs (compared after resolving links and ``..``)."""
    try:
        real = Path(folder).expanduser().resolve()
    except (OSError, RuntimeError):
        return False
    return any(real == p.resolve() for p in allowed.values())
