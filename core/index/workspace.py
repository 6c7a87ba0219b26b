"""Where the app keeps its artefacts: one cached index per (catalog folder, embedder), rebuilt when stale."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from core.config.paths import DEMO_CATALOG, SAMPLE_CATALOG, cache_dir, slug
from core.config.progress import Progress
from core.config.runtime import release_memory
from core.config.store import StoreError
from core.data.catalog import Catalog, load_catalog
from core.embedding import Embedder
from core.index.prepared import prepared_vectors
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


class _Flight:
    """One build under way: who leads it, its progress so far, then its index or its error."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.leader = threading.current_thread()
        self.progress = (0, 0)
        self.index: ProductIndex | None = None
        self.error: BaseException | None = None


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()


def ensure_index(catalog_root: str | Path, embedder: Embedder, progress: Progress | bool = False,
                 *, rebuild: bool = False) -> ProductIndex:
    """Load the cached index for this catalog and embedder, or build it (again) if missing or stale.

    One build per index at a time in this process, whatever the number of callers (single flight): a caller that
    finds a build of the same index under way waits for it (its ``progress`` follows that build's) and gets its
    index, or its error. A build that fails or is interrupted (its page stopped or rerun) always releases its
    flight; a caller waiting on an interrupted build takes it over rather than inheriting the interruption."""
    catalog = load_catalog(catalog_root)
    d = index_dir_for(catalog.root, embedder.spec)
    state, _ = index_state(catalog, embedder)
    if state == "ok" and not rebuild:
        return ProductIndex.load(d, embedder)
    while True:
        with _flights_lock:
            flight = _flights.get(str(d))
            if flight is None:
                flight = _flights[str(d)] = _Flight()
                break
        idx = _follow(flight, progress)
        if idx is not None:
            return idx
        with _flights_lock:  # its leader is gone without finishing: release it, then lead or follow anew
            if _flights.get(str(d)) is flight:
                del _flights[str(d)]
    try:
        if not rebuild and index_state(catalog, embedder)[0] == "ok":  # built meanwhile by a flight now over
            flight.index = ProductIndex.load(d, embedder)
        else:
            prepared = prepared_vectors(catalog, embedder)  # the sample's vectors, shipped: no image embedded
            flight.index, _ = ProductIndex.build(catalog, embedder, d, vectors=prepared,
                                                 progress=False if prepared is not None else _relay(flight, progress))
        return flight.index
    except BaseException as e:
        flight.error = e
        raise
    finally:
        with _flights_lock:
            if _flights.get(str(d)) is flight:
                del _flights[str(d)]
        flight.done.set()
        release_memory()  # the build's batches are freed: give the pages back to the system


def _relay(flight: _Flight, progress: Progress | bool) -> Progress | bool:
    """``progress``, also recorded on ``flight`` for the callers waiting on it."""
    if not callable(progress):
        return progress

    def report(i: int, n: int) -> None:
        flight.progress = (i, n)
        progress(i, n)
    return report


def _follow(flight: _Flight, progress: Progress | bool) -> ProductIndex | None:
    """Wait for another caller's build, showing its progress: its index, or its error raised again; None when the
    build was interrupted (a stopped page: not this caller's error) or its leader is gone, so the caller retries."""
    while not flight.done.wait(0.25):
        if not flight.leader.is_alive():
            return None
        if callable(progress) and flight.progress[1]:
            progress(*flight.progress)
    if isinstance(flight.error, Exception):
        raise flight.error
    return flight.index
