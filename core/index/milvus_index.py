"""The Milvus backend: one collection holds every vector with its product id, image and filter fields.

Where it lives and how to connect: :mod:`core.index.milvus_connect`.

The manifest (embedder spec and weights digest, catalog root and fingerprint, counts, generation) lives in the
collection's properties and is checked on open. Search groups by ``product_id`` (best image per product): Milvus
groups itself where it can (``group_by_field``: Milvus Lite, servers 2.4+), else this client over-fetches vectors
and groups them (:meth:`MilvusIndex._grouped_here`); then it re-scores the returned vectors exactly. FLAT is
exact; IVF probes every list when asked for exact results or when the filters leave few rows. Removal deletes
at once (Milvus compacts on its own or with :meth:`compact`).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from functools import cached_property
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.catalog import Catalog, CatalogRow
from core.embedding import Embedder
from core.index.backend import BuildReport, Hit, IndexBackend, conditions, embed_rows
from core.index.files import MAX_DIM, IndexStateError
from core.index.milvus_connect import (
    Location,
    capabilities_of,
    client_for,
    first_line,
    keep_faiss_search_params,
    parse_location,
)
from core.index.milvus_filters import NUMBER, TEXT, filter_fields, lit, to_expr

FORMAT_VERSION = 1
PROPERTY = "vps.manifest"
METRIC = "IP"  # unit vectors: inner product is cosine similarity
INDEX_TYPES = ("FLAT", "IVF_FLAT", "HNSW")
#: below this many vectors a build is FLAT (exact), from it IVF_FLAT
IVF_MIN_VECTORS = 100_000
_INSERT_BATCH = 500
_FETCH_BATCH = 1000
_OUT = ["product_id", "image", "fields", "vector"]
#: the most results one Milvus search returns (its ``topk`` limit)
MAX_TOPK = 16_384
#: searches at most this many times, 4x more vectors each, to find k products where the server cannot group
GROUP_ROUNDS = 4
#: products asked of Milvus beyond k: a margin for the exact re-scoring's near ties
MARGIN = 5


def _damaged(loc: Location, what: str) -> IndexStateError:
    return IndexStateError(f"index {loc.uri}: {what}; the index is damaged, rebuild it")


def _check_manifest(loc: Location, raw: str | None) -> dict:
    if raw is None:
        raise IndexStateError(f"{loc.uri}: collection {loc.collection} was not written by this program")
    try:
        m = json.loads(raw)
    except ValueError:
        raise _damaged(loc, "its manifest property is not valid JSON") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT_VERSION:
        raise IndexStateError(f"{loc.uri} was written by another version of this program; rebuild it")
    emb, dim = m.get("embedder"), m.get("dim")
    ok = (isinstance(emb, dict) and isinstance(emb.get("spec"), str) and emb["spec"] and type(dim) is int
          and 1 <= dim <= MAX_DIM and m.get("index_type") in INDEX_TYPES and type(m.get("generation")) is int
          and type(m.get("n_vectors")) is int and isinstance(m.get("catalog_root"), str | None)
          and isinstance(m.get("catalog_fingerprint"), str | None))
    if not ok:
        raise _damaged(loc, "its manifest property is inconsistent")
    return m


def _index_params(client, index_type: str, n: int) -> tuple[object, dict]:
    params: dict = {}
    if index_type == "IVF_FLAT":
        params = {"nlist": max(1, min(int(4 * math.sqrt(n)), n // 39))}
    elif index_type == "HNSW":
        params = {"M": 16, "efConstruction": 200}
    ip = client.prepare_index_params()
    # flat keys for Milvus 2.4+ servers, the same under "params" for Milvus Lite (which reads only that)
    ip.add_index(field_name="vector", index_type=index_type, metric_type=METRIC, params={"params": params}, **params)
    return ip, params


def _rows(vectors: np.ndarray, items: list[dict], products: dict[str, dict]) -> list[dict]:
    out = []
    for v, it in zip(vectors, items):
        fields = {k: str(x) for k, x in products.get(it["product_id"], {}).items()}
        text, nums = filter_fields(fields)
        out.append({"vector": np.asarray(v, np.float32).tolist(), "product_id": it["product_id"],
                    "image": it["image"], "fields": fields, TEXT: text, NUMBER: nums})
    return out


def _insert(client, coll: str, vectors: np.ndarray, items: list[dict], products: dict[str, dict]) -> None:
    for a in range(0, len(items), _INSERT_BATCH):
        client.insert(coll, _rows(vectors[a:a + _INSERT_BATCH], items[a:a + _INSERT_BATCH], products))


class RowVectors:
    """An index's vectors by row number, fetched from the collection when asked (all at once for big asks)."""

    def __init__(self, index: MilvusIndex):
        self._index, self._full = index, None
        self.shape, self.dtype, self.ndim = (len(index.pks), index.dim), np.dtype(np.float32), 2

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self._all() if dtype is None else self._all().astype(dtype)

    def _all(self) -> np.ndarray:
        if self._full is None:
            self._full = self._fetch(np.arange(len(self)))
        return self._full

    def _fetch(self, rows: np.ndarray) -> np.ndarray:
        pks = self._index.pks[rows]
        out = np.empty((len(rows), self.shape[1]), np.float32)
        pos = {int(p): i for i, p in enumerate(pks)}
        for a in range(0, len(pks), _FETCH_BATCH):
            got = self._index.client.get(self._index.collection, ids=pks[a:a + _FETCH_BATCH].tolist(),
                                         output_fields=["vector"])
            for r in got:
                out[pos[int(r["id"])]] = r["vector"]
            if len(got) != len(pks[a:a + _FETCH_BATCH]):
                raise IndexStateError(f"index {self._index.uri} changed while it was read; open it again")
        return out

    def __getitem__(self, key):
        if self._full is not None or isinstance(key, slice) or key is Ellipsis:
            return self._all()[key]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        flat = idx.reshape(-1).astype(np.int64)
        if len(flat) > len(self) // 4:
            return self._all()[idx]
        vecs = self._fetch(flat)
        return vecs[0] if idx.ndim == 0 else vecs.reshape(*idx.shape, self.shape[1])


class MilvusIndex(IndexBackend):
    """An index in a Milvus collection. Open with :meth:`load`, create with :meth:`build` or :meth:`from_arrays`."""

    def __init__(self, loc: Location):
        self.loc, self.uri, self.root, self.collection = loc, loc.uri, loc.root, loc.collection
        self.client = client_for(loc)
        try:
            if not self.client.has_collection(loc.collection):
                raise IndexStateError(f"no index in {loc.uri} (build it: python -m core index --catalog DIR "
                                      f"--out {loc.uri})")
            desc = self.client.describe_collection(loc.collection)
            self.manifest = _check_manifest(loc, (desc.get("properties") or {}).get(PROPERTY))
            vec = next((f for f in desc.get("fields", []) if f.get("name") == "vector"), None)
            if vec is None or int((vec.get("params") or {}).get("dim", -1)) != self.manifest["dim"]:
                raise _damaged(loc, "its vector field does not match the manifest's dimension")
            self.client.load_collection(loc.collection)
        except IndexStateError:
            raise
        except Exception as e:  # noqa: BLE001 - a server error is one line
            raise IndexStateError(f"index {loc.uri}: {first_line(e)}") from None
        self.spec, self.dim = self.manifest["embedder"]["spec"], self.manifest["dim"]
        self.caps = capabilities_of(self.client)

    @classmethod
    def load(cls, location, embedder: Embedder | str | None = None) -> MilvusIndex:
        loc = location if isinstance(location, Location) else parse_location(location)
        if loc is None:
            raise IndexStateError(f"{location} is not a Milvus location (milvus-lite:PATH, *.db, http(s)://...)")
        idx = cls(loc)
        if embedder is not None:
            idx.check_embedder(embedder)
        return idx

    @property
    def fingerprint(self) -> str:
        return f"{self.manifest['build_id']}-{self.manifest['generation']}"

    @property
    def summary(self) -> str:
        return f"{len(self)} products, {self.manifest['n_vectors']} vectors, {self.manifest['index_type']} index"

    # ---------------------------------------------------------------- the snapshot of rows
    @cached_property
    def _table(self) -> tuple[np.ndarray, list[dict], dict[str, dict]]:
        """``(pks, items, products)`` of every live row, in primary-key order."""
        rows: list[dict] = []
        it = self.client.query_iterator(self.collection, batch_size=10_000, filter="",
                                        output_fields=["product_id", "image", "fields"])
        try:
            while batch := it.next():
                rows.extend(batch)
        finally:
            it.close()
        rows.sort(key=lambda r: r["id"])
        items, products = [], {}
        for r in rows:
            pid, img, fields = r.get("product_id"), r.get("image"), r.get("fields")
            if type(pid) is not str or type(img) is not str or type(fields) is not dict:
                raise _damaged(self.loc, f"a row is not {{product_id, image, fields}}: {str(r)[:60]}")
            items.append({"product_id": pid, "image": img})
            products.setdefault(pid, {k: str(v) for k, v in fields.items()})
        return np.array([r["id"] for r in rows], np.int64), items, products

    @property
    def pks(self) -> np.ndarray:
        return self._table[0]

    @cached_property
    def items(self) -> list[dict]:
        return self._table[1]

    @cached_property
    def products(self) -> dict[str, dict[str, str]]:
        return self._table[2]

    @cached_property
    def item_pid(self) -> np.ndarray:
        return np.array([it["product_id"] for it in self.items], dtype=object)

    @cached_property
    def alive(self) -> np.ndarray:
        return np.ones(len(self.items), bool)  # removed rows are deleted from the collection at once

    @cached_property
    def vectors(self) -> RowVectors:
        return RowVectors(self)

    # ---------------------------------------------------------------- search
    def _count(self, expr: str) -> int:
        return int(self.client.query(self.collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"])

    def _search_params(self, expr: str, k: int, exact: bool, limit: int) -> dict:
        m = self.manifest
        if m["index_type"] == "FLAT":
            return {}
        n = max(1, m["n_vectors"])
        selective = bool(expr) and self._count(expr) <= max(4 * k * max(1, n // max(1, m["n_products"])), n // 20)
        if m["index_type"] == "IVF_FLAT":
            nlist = m["index_params"]["nlist"]
            return {"nprobe": nlist if exact or selective else min(nlist, max(32, nlist // 8))}
        return {"ef": max(4 * k, limit, 512 if exact or selective else 128)}

    def search(self, queries: np.ndarray, k: int = 10, where=None, *, exact: bool = False,
               search_k: int = -1, min_score: float | None = None) -> list[list[Hit]]:
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if q.shape[1] != self.dim:
            raise IndexStateError(f"query vectors are {q.shape[1]}-d, the index is {self.dim}-d")
        if not len(q) or k <= 0:
            return [[] for _ in q]
        expr = to_expr(conditions(where))
        want = min(k + MARGIN, MAX_TOPK)
        try:
            keep_faiss_search_params()  # pytorch-metric-learning may have been imported since the connection
            if self.caps.group_by:
                res = self._raw_search(q, want, expr, k, exact, group_by_field="product_id")
            else:
                res = self._grouped_here(q, want, expr, k, exact)
        except Exception as e:  # noqa: BLE001 - a server error is one line
            raise IndexStateError(f"search in {self.uri} failed: {first_line(e)}") from None
        return [self._hits(row, found, k, min_score) for row, found in zip(q, res)]

    def _raw_search(self, q: np.ndarray, limit: int, expr: str, k: int, exact: bool, **kw) -> list:
        params = self._search_params(expr, k, exact, limit)
        return self.client.search(self.collection, data=q.tolist(), limit=limit, filter=expr, output_fields=_OUT,
                                  search_params={"metric_type": METRIC, "params": params}, **kw)

    def _grouped_here(self, q: np.ndarray, want: int, expr: str, k: int, exact: bool) -> list[list]:
        """Each query's best vectors, enough of them to hold ``want`` products, from a server that cannot group:
        ask for ``want`` products' worth (twice the mean views per product); where they hold fewer products and
        the server had more rows, ask again for 4x as many, at most :data:`GROUP_ROUNDS` times in all (and
        :data:`MAX_TOPK` rows), then keep what came (a product with thousands of views can still crowd others
        out)."""
        m = self.manifest
        limit = min(MAX_TOPK, 2 * want * max(1, math.ceil(m["n_vectors"] / max(1, m["n_products"]))))
        out: list[list] = [[] for _ in q]
        todo = list(range(len(q)))
        for _ in range(GROUP_ROUNDS):
            again = []
            for i, found in zip(todo, self._raw_search(q[todo], limit, expr, k, exact)):
                out[i] = found
                if len(found) >= limit and limit < MAX_TOPK and \
                        len({h["entity"]["product_id"] for h in found}) < want:
                    again.append(i)
            if not again:
                break
            todo, limit = again, min(MAX_TOPK, 4 * limit)
        return out

    def _hits(self, q: np.ndarray, found, k: int, min_score: float | None) -> list[Hit]:
        ents = [h["entity"] for h in found]
        if not ents:
            return []
        scores = np.asarray([e["vector"] for e in ents], np.float32) @ q  # exact, as the Annoy backend scores
        best: dict[str, tuple[float, dict]] = {}
        for s, e in zip(scores.tolist(), ents):
            if e["product_id"] not in best or s > best[e["product_id"]][0]:
                best[e["product_id"]] = (s, e)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
        root = self.catalog_root
        out = []
        for r, (pid, (s, e)) in enumerate(ranked):
            if min_score is not None and s < min_score:
                continue
            img = Path(e["image"])
            out.append(Hit(pid, round(float(s), 6), r + 1, str(img if img.is_absolute() else root / img),
                           {k_: str(v) for k_, v in (e.get("fields") or {}).items()}, round(float(s), 6)))
        return out

    # ---------------------------------------------------------------- writing
    @classmethod
    def from_arrays(cls, out, vectors: np.ndarray, items: list[dict], products: dict[str, dict],
                    embedder_info: dict, *, catalog_root: str | Path = ".", catalog: Catalog | None = None,
                    index_type: str | None = None, **_) -> MilvusIndex:
        """Write a fresh collection (built under a temporary name, then swapped in)."""
        loc = out if isinstance(out, Location) else parse_location(out)
        if loc is None:
            raise IndexStateError(f"{out} is not a Milvus location")
        if len(vectors) != len(items) or not len(items):
            raise IndexStateError(f"{len(vectors)} vectors for {len(items)} item rows")
        n, dim = len(items), int(embedder_info["dim"])
        index_type = (index_type or ("FLAT" if n < IVF_MIN_VECTORS else "IVF_FLAT")).upper()
        if index_type not in INDEX_TYPES:
            raise IndexStateError(f"index type {index_type}: use one of {', '.join(INDEX_TYPES)}")
        client = client_for(loc, create=True)
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("product_id", DataType.VARCHAR, max_length=512)
        schema.add_field("image", DataType.VARCHAR, max_length=4096)
        for name in ("fields", TEXT, NUMBER):
            schema.add_field(name, DataType.JSON)
        vectors = np.asarray(vectors, np.float32)
        tmp = f"{loc.collection}__build_{uuid.uuid4().hex[:8]}"
        ip, params = _index_params(client, index_type, n)
        manifest = {
            "format": FORMAT_VERSION, "embedder": embedder_info, "dim": dim, "metric": METRIC,
            "index_type": index_type, "index_params": params,
            "catalog_root": str(Path(catalog.root if catalog else catalog_root).resolve()),
            "catalog_fingerprint": catalog.fingerprint() if catalog else None,
            "n_vectors": n, "n_products": len({it["product_id"] for it in items}), "n_delta": 0,
            "build_id": uuid.uuid4().hex[:12], "generation": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            client.create_collection(tmp, schema=schema)
            _insert(client, tmp, vectors, items, products)
            client.flush(tmp)
            client.create_index(tmp, ip)  # after the inserts, so IVF trains its lists on the data
            client.alter_collection_properties(tmp, properties={PROPERTY: json.dumps(manifest)})
            if client.has_collection(loc.collection):
                client.drop_collection(loc.collection)
            client.rename_collection(tmp, loc.collection)
        except Exception as e:  # noqa: BLE001 - a server error is one line; the half-built collection goes
            if client.has_collection(tmp):
                client.drop_collection(tmp)
            raise IndexStateError(f"building {loc.uri} failed: {first_line(e)}") from None
        return cls.load(loc)

    def _publish(self, products: set[str], **changes) -> MilvusIndex:
        """Record a write in the manifest (a new generation; ``products``: the live ones now) and reopen."""
        m = {**self.manifest, **changes, "generation": self.manifest["generation"] + 1}
        m["n_vectors"], m["n_products"] = self._count(""), len(products)
        self.client.alter_collection_properties(self.collection, properties={PROPERTY: json.dumps(m)})
        return MilvusIndex.load(self.loc)

    def add(self, catalog: Catalog, embedder: Embedder, *, progress: Progress | bool = False,
            rows: list[CatalogRow] | None = None) -> tuple[MilvusIndex, BuildReport]:
        """Embed catalog rows not in the collection yet and insert them (searchable at once)."""
        self.check_embedder(embedder)
        cur = MilvusIndex.load(self.loc)
        have = {(it["product_id"], cur.image_path(i)) for i, it in enumerate(cur.items)}
        rows = [r for r in (rows if rows is not None else catalog.rows)
                if (r.product_id, str(catalog.path(r))) not in have]
        vecs, items, report = embed_rows(catalog, rows, embedder, progress, 32, cur.catalog_root)
        if items:
            products = {**cur.products, **{r.product_id: dict(r.fields) for r in reversed(rows)}}
            _insert(self.client, self.collection, np.asarray(vecs, np.float32), items, products)
            self.client.flush(self.collection)
        live = set(cur.products) | {it["product_id"] for it in items}
        return cur._publish(live, catalog_fingerprint=catalog.fingerprint()), report

    def remove(self, product_ids: list[str], catalog: Catalog | None = None) -> MilvusIndex:
        """Delete the products' rows (searches no longer see them)."""
        cur = MilvusIndex.load(self.loc)
        unknown = [p for p in product_ids if p not in cur.products]
        if unknown:
            raise IndexStateError(f"unknown product id(s): {', '.join(unknown[:5])}")
        if product_ids:
            self.client.delete(self.collection, filter=f"product_id in [{', '.join(map(lit, product_ids))}]")
            self.client.flush(self.collection)
        changes = {"catalog_fingerprint": catalog.fingerprint()} if catalog is not None else {}
        return cur._publish(set(cur.products) - set(product_ids), **changes)

    def compact(self, trees: int | None = None) -> MilvusIndex:
        """Ask Milvus to compact the collection (drop deleted rows from its segments)."""
        self.client.compact(self.collection)
        return MilvusIndex.load(self.loc)
