"""The index backend interface: what search, ranking, evaluation, the app and bench use of an index, whatever
stores it (Annoy folder: :mod:`core.index.product_index`; Milvus: :mod:`core.index.milvus_index`).

A backend keeps, besides its store, a snapshot of the catalog side that every caller shares: one row per live
vector (``items``, ``item_pid``, ``alive``, ``vectors`` addressed by row number), the products' fields and the
manifest (embedder spec and weights digest, catalog root and fingerprint). Open one with
:func:`core.index.factory.open_index`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.catalog import Catalog, CatalogRow, product_columns
from core.data.filters import Condition, matches, parse_where
from core.embedding import Embedder
from core.embedding.batch import embed_sources
from core.index.files import IndexStateError


@dataclass
class Hit:
    product_id: str
    score: float  # what the list is ordered by: similarity, or the sum of ``contributions`` when re-ranked
    rank: int
    image: str  # absolute path of the best-matching image
    fields: dict[str, str] = field(default_factory=dict)
    similarity: float = 0.0  # cosine similarity of the best-matching image
    contributions: dict[str, float] = field(default_factory=dict)  # weight x score per ranking dimension

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BuildReport:
    added: int = 0
    skipped: list[str] = field(default_factory=list)


def conditions(where: list[Condition] | list[str] | str | None) -> list[Condition]:
    """Filters as parsed conditions (already parsed ones pass through)."""
    return parse_where(where) if where and not isinstance(where[0], Condition) else list(where or [])


class IndexBackend(ABC):
    """Search products by image vectors. Subclasses set the attributes below when they open an index."""

    uri: str  # how the user named it (a folder, ``milvus-lite:PATH``, ``http://host:19530``)
    root: Path  # a folder that identifies the index (cache keys of its artefacts)
    manifest: dict
    spec: str
    dim: int
    products: dict[str, dict[str, str]]
    items: list[dict]  # one {product_id, image} per vector row
    item_pid: np.ndarray  # product id of each row
    alive: np.ndarray  # rows not removed
    vectors: np.ndarray  # (rows, dim) float32 unit vectors, indexable by row numbers (an array or a row reader)

    # ---------------------------------------------------------------- opening and writing
    @classmethod
    @abstractmethod
    def load(cls, location, embedder: Embedder | str | None = None) -> IndexBackend:
        """Open an index. With ``embedder``, refuse one built by another embedder (or other weights)."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, out, vectors: np.ndarray, items: list[dict], products: dict[str, dict],
                    embedder_info: dict, *, catalog_root: str | Path = ".", catalog: Catalog | None = None,
                    **options) -> IndexBackend:
        """Write an index from precomputed unit vectors (one ``items`` row per vector)."""

    @abstractmethod
    def add(self, catalog: Catalog, embedder: Embedder, *, progress: Progress | bool = False,
            rows: list[CatalogRow] | None = None) -> tuple[IndexBackend, BuildReport]:
        """Embed only catalog rows not yet indexed and make them searchable; no rebuild."""

    @abstractmethod
    def remove(self, product_ids: list[str], catalog: Catalog | None = None) -> IndexBackend:
        """Hide products from search at once. Pass the edited ``catalog`` when its rows were removed too."""

    @abstractmethod
    def compact(self, trees: int | None = None) -> IndexBackend:
        """Reclaim what removed products held."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int = 10, where=None, *, exact: bool = False,
               search_k: int = -1, min_score: float | None = None) -> list[list[Hit]]:
        """Top-``k`` products per query vector (rows of ``queries``), each by its best image, best first."""

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies this exact content (changes on every add, remove or compact)."""

    def intact(self) -> bool:
        """False once the store changed under this open index so that it cannot answer (open it again)."""
        return True

    @property
    def summary(self) -> str:
        """One line on what the store holds (the CLI prints it after a write)."""
        m = self.manifest
        return f"{len(self)} products, {m['n_vectors']} vectors"

    @classmethod
    def build(cls, catalog: Catalog, embedder: Embedder, out, *, progress: Progress | bool = False,
              batch_size: int = 32, **options) -> tuple[IndexBackend, BuildReport]:
        """Embed every catalog image and write a fresh index to ``out``."""
        vecs, items, report = embed_rows(catalog, catalog.rows, embedder, progress, batch_size)
        return cls.from_embedded(catalog, embedder, out, vecs, items, **options), report

    @classmethod
    def from_vectors(cls, catalog: Catalog, embedder: Embedder, vecs: np.ndarray, out, *,
                     rows: list[CatalogRow] | None = None, **options) -> IndexBackend:
        """Write an index of vectors computed elsewhere (``vecs[i]`` embeds ``rows[i]``, default all rows)."""
        rows = catalog.rows if rows is None else rows
        if len(rows) != len(vecs):
            raise ValueError(f"{len(vecs)} vectors for {len(rows)} catalog rows")
        return cls.from_embedded(catalog, embedder, out, np.asarray(vecs, np.float32),
                                 [item_of(catalog, r, catalog.root) for r in rows], **options)

    @classmethod
    def from_embedded(cls, catalog: Catalog, embedder: Embedder, out, vecs: np.ndarray, items: list[dict],
                      **options) -> IndexBackend:
        """Write an index of a catalog's embedded rows (``items`` from :func:`embed_rows`)."""
        if not items:
            raise IndexStateError("no catalog image could be embedded")
        used = {it["product_id"] for it in items}
        products = {pid: dict(f) for pid, f in catalog.products.items() if pid in used}
        idx = cls.from_arrays(out, vecs, items, products, embedder.info(), catalog_root=catalog.root,
                              catalog=catalog, **options)
        idx.check_embedder(embedder)
        return idx

    # ---------------------------------------------------------------- shared, backend-independent
    def check_embedder(self, embedder: Embedder | str) -> None:
        spec = embedder if isinstance(embedder, str) else embedder.spec
        dim = None if isinstance(embedder, str) else embedder.dim
        if spec != self.spec or (dim is not None and dim != self.dim):
            raise IndexStateError(f"index {self.uri} was built with embedder {self.spec} ({self.dim}-d), "
                                  f"not {spec}; rebuild it or load it with --model {self.spec}")
        weights = None if isinstance(embedder, str) else embedder.info().get("weights")
        if weights and weights != self.manifest["embedder"].get("weights"):
            raise IndexStateError(f"index {self.uri} was built with other weights of {spec} (retrained?); rebuild it")

    @property
    def catalog_root(self) -> Path:
        return Path(self.manifest["catalog_root"])

    def image_path(self, i: int) -> str:
        p = Path(self.items[i]["image"])
        return str(p if p.is_absolute() else self.catalog_root / p)

    @cached_property
    def vector_ids(self) -> dict[str, list[int]]:
        """The live vectors (row numbers) of each product."""
        out: dict[str, list[int]] = {}
        for i in np.flatnonzero(self.alive):
            out.setdefault(self.item_pid[i], []).append(int(i))
        return out

    def product_vectors(self, product_id: str) -> np.ndarray:
        """The live vectors of one product, ``(n, dim)`` (empty for an unknown or removed product)."""
        ids = self.vector_ids.get(product_id, [])
        return np.asarray(self.vectors[ids], np.float32) if ids else np.zeros((0, self.dim), np.float32)

    def live_products(self) -> list[str]:
        return sorted(self.vector_ids)

    def labels(self, label: str = "product_id") -> dict[str, str]:
        """product_id -> its value of the catalog column ``label`` ("" where it has none; the id itself for
        ``product_id``), for every product. A column that no product has is an :class:`IndexStateError`."""
        if label == "product_id":
            return {pid: pid for pid in self.products}
        if not any(label in f for f in self.products.values()):
            cols = product_columns(self.products)
            raise IndexStateError(f"no column {label!r} in the catalog (columns: product_id, {', '.join(cols)})")
        return {pid: f.get(label, "") for pid, f in self.products.items()}

    def label_counts(self, label: str = "product_id") -> dict[str, int]:
        """How many live products carry each value of ``label``."""
        labels = self.labels(label)
        return dict(Counter(labels[pid] for pid in self.vector_ids))

    def allowed_mask(self, where: list[Condition] | list[str] | str | None = None) -> np.ndarray:
        """Vectors that are alive and whose product passes the filters."""
        conds = conditions(where)
        mask = self.alive.copy()
        if conds:
            ok = {pid for pid, f in self.products.items() if matches(f, conds)}
            mask &= np.array([p in ok for p in self.item_pid], bool)
        return mask

    def __len__(self) -> int:
        return len(self.live_products())


def row_scores(rows, q: np.ndarray) -> np.ndarray:
    """``rows @ q`` as float32, computed on the calling thread (``einsum``): numpy's BLAS hands part of even a
    search's few hundred rows to a thread of its own and waits for it, for milliseconds whenever other work holds
    the cores (BENCHMARKS.md, issue 29)."""
    return np.einsum("ij,j->i", np.asarray(rows, np.float32), np.asarray(q, np.float32))


def item_of(catalog: Catalog, row: CatalogRow, root: Path) -> dict:
    """The ``{product_id, image}`` row of a catalog row; ``image`` relative to ``root`` where it lies inside."""
    root = root.resolve()
    p = catalog.path(row).resolve()
    return {"product_id": row.product_id, "image": p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)}


def embed_rows(catalog: Catalog, rows: list[CatalogRow], embedder: Embedder, progress, batch_size: int = 32,
               root: Path | None = None, vectors: np.ndarray | None = None, errors: dict[int, str] | None = None
               ) -> tuple[np.ndarray, list[dict], BuildReport]:
    """Embed ``rows`` with the one batch embedder: ``(vectors, items, report)`` of the usable ones.
    ``vectors``/``errors`` computed elsewhere (the Ray engine) are taken as they are."""
    if vectors is None:
        vectors, errors = embed_sources(embedder, [catalog.path(r) for r in rows], batch_size=batch_size,
                                        progress=progress)
    errors = errors or {}
    report = BuildReport(skipped=[str(s) for s in catalog.skipped])
    items = []
    for i, r in enumerate(rows):
        if i in errors:
            where = f"line {r.line}" if r.line else "file"
            report.skipped.append(f"{where} ({r.image}): {errors[i]}")
            continue
        items.append(item_of(catalog, r, root or catalog.root))
    report.added = len(items)
    return vectors, items, report
