"""Open or build an index wherever it lives: a folder is the Annoy backend (the default; an hnswlib graph from
``HNSW_MIN_VECTORS`` to ``PCA_MIN_VECTORS`` vectors), ``hnsw:FOLDER`` the same folder with a graph at any size;
``milvus-lite:PATH``, a ``*.db`` path or ``http(s)://host:19530`` is Milvus (:mod:`core.index.milvus_index`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.catalog import Catalog
from core.embedding import Embedder
from core.index.backend import BuildReport, IndexBackend, embed_rows
from core.index.hnsw_index import HnswIndex, parse_hnsw
from core.index.milvus_index import MilvusIndex, parse_location
from core.index.product_index import ProductIndex

ENGINES = ("local", "ray")


def backend_for(location: str | Path) -> type[IndexBackend]:
    """The backend class that stores ``location``."""
    if parse_location(location) is not None:
        return MilvusIndex
    return HnswIndex if parse_hnsw(location) is not None else ProductIndex


def open_index(location: str | Path, embedder: Embedder | str | None = None) -> IndexBackend:
    """Open the index at ``location``; with ``embedder``, refuse one built by another embedder or weights."""
    return backend_for(location).load(location, embedder)


def build_index(catalog: Catalog, embedder: Embedder, out: str | Path, *, progress: Progress | bool = False,
                batch_size: int = 32, engine: str = "local", ray_address: str | None = None,
                shards: str | Path | None = None, **options) -> tuple[IndexBackend, BuildReport]:
    """Embed every catalog image and write a fresh index to ``out``. ``engine="ray"`` embeds on a Ray cluster
    (``ray_address``, or a local one) into vector ``shards`` first; ``options`` go to the backend (``trees`` for
    Annoy, ``index_type`` for Milvus)."""
    cls = backend_for(out)
    options = {k: v for k, v in options.items() if v is not None}
    if engine == "local":
        return cls.build(catalog, embedder, out, progress=progress, batch_size=batch_size, **options)
    if engine != "ray":
        raise ValueError(f"engine {engine!r}: use one of {', '.join(ENGINES)}")
    from core.embedding.ray_engine import embed_catalog_ray, read_shards

    with tempfile.TemporaryDirectory(prefix="vps-shards-") as tmp:
        shard_dir = embed_catalog_ray(catalog, embedder.spec, shards or tmp, address=ray_address,
                                      batch_size=batch_size)
        vecs, errors = read_shards(shard_dir, len(catalog.rows), embedder.dim)
    vecs, items, report = embed_rows(catalog, catalog.rows, embedder, False, vectors=vecs, errors=errors)
    return cls.from_embedded(catalog, embedder, out, np.asarray(vecs, np.float32), items, **options), report
