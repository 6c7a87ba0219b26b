"""The hnsw backend (``hnsw:PATH``): the index folder of :mod:`core.index.product_index` (generations, row-read
vectors, the exact delta set, tombstones) with an hnswlib graph in place of the Annoy forest, whatever the size.
A plain folder gets the graph by itself from ``HNSW_MIN_VECTORS`` to ``PCA_MIN_VECTORS`` vectors
(product_index.forest_for)."""

from __future__ import annotations

from pathlib import Path

from core.index.product_index import ProductIndex

PREFIX = "hnsw:"


def parse_hnsw(location: str | Path) -> Path | None:
    """The folder of an ``hnsw:PATH`` location, else None."""
    s = str(location)
    return Path(s[len(PREFIX):].strip()).expanduser() if s.startswith(PREFIX) and s[len(PREFIX):].strip() else None


def _folder(location: str | Path) -> Path:
    return parse_hnsw(location) or Path(location)


class HnswIndex(ProductIndex):
    """An index folder searched through an hnswlib graph (``forest: hnsw``)."""

    FOREST = "hnsw"

    @classmethod
    def load(cls, root, embedder=None) -> HnswIndex:
        idx = super().load(_folder(root), embedder)
        idx.uri = f"{PREFIX}{idx.root}"
        return idx

    @classmethod
    def build(cls, catalog, embedder, out, **options):
        return super().build(catalog, embedder, _folder(out), **options)

    @classmethod
    def from_arrays(cls, out, vectors, items, products, embedder_info, **options) -> HnswIndex:
        return super().from_arrays(_folder(out), vectors, items, products, embedder_info, **options)
