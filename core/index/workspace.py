"""Where the app keeps its artefacts: one cached index per (catalog folder, embedder), rebuilt when stale."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.config.paths import DEMO_CATALOG, SAMPLE_CATALOG, cache_dir, slug
from core.config.progress import Progress
from core.config.store import StoreError
from core.data.catalog import Catalog, load_catalog
from core.embedding import Embedder
from core.index.product_index import IndexStateError, ProductIndex


def index_dir_for(catalog_root: str | Path, spec: str) -> Path:
    root = Path(catalog_root).resolve()
    key = hashlib.sha1(f"{root}\n{spec}".encode()).hexdigest()[:10]
    return cache_dir() / "indexes" / f"{slug(root.name)}-{slug(spec)}-{key}"


#: the key of the bundled sample catalog (an imported dataset's key is its name)
SAMPLE_KEY = "sample"
#: the key of the bundled real-photo demo (``demo_catalog/``)
DEMO_KEY = "demo"
LABELS = {SAMPLE_KEY: "Sample catalog", DEMO_KEY: "Grocery shop photos (real)"}


def catalog_keys() -> dict[str, Path]:
    """Catalogs the app offers by short key (what a link names): ``sample``, the real-photo ``demo`` where it is
    bundled, plus each imported dataset found in the cache under its name."""
    out = {SAMPLE_KEY: SAMPLE_CATALOG}
    if (DEMO_CATALOG / "catalog.csv").is_file():
        out[DEMO_KEY] = DEMO_CATALOG
    imports = cache_dir() / "imports"
    if imports.is_dir():
        for d in sorted(imports.iterdir()):
            if (d / "catalog" / "catalog.csv").is_file():
                out.setdefault(d.name, d / "catalog")
    return out


def catalog_label(key: str) -> str:
    """How the app names the catalog of ``key``."""
    return LABELS.get(key) or f"Dataset: {key}"


def known_catalogs() -> dict[str, Path]:
    """Catalogs the app offers by label: the sample, plus imported datasets found in the cache."""
    return {catalog_label(k): p for k, p in catalog_keys().items()}


def index_state(catalog: Catalog, spec: str | Embedder) -> tuple[str, str]:
    """('missing' | 'stale' | 'ok', reason) for the cached index of ``catalog`` built by ``spec``.

    Given an embedder (not just its spec), an index built with other weights under the same spec (a retrained
    head) is stale too."""
    d = index_dir_for(catalog.root, spec if isinstance(spec, str) else spec.spec)
    try:
        idx = ProductIndex.load(d, spec)
    except (IndexStateError, StoreError, OSError, ValueError) as e:
        return ("missing" if not (d / "CURRENT").exists() else "stale"), str(e)
    if idx.manifest.get("catalog_fingerprint") != catalog.fingerprint():
        return "stale", "the catalog changed since the index was built"
    return "ok", ""


def ensure_index(catalog_root: str | Path, embedder: Embedder, progress: Progress | bool = False,
                 *, rebuild: bool = False) -> ProductIndex:
    """Load the cached index for this catalog and embedder, or build it (again) if missing or stale."""
    catalog = load_catalog(catalog_root)
    d = index_dir_for(catalog.root, embedder.spec)
    state, _ = index_state(catalog, embedder)
    if state == "ok" and not rebuild:
        return ProductIndex.load(d, embedder)
    idx, _ = ProductIndex.build(catalog, embedder, d, progress=progress)
    return idx
