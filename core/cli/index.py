"""Verbs of the index stage: ``index``, ``info``, ``add``, ``remove``, ``compact``, ``add-product``,
``remove-product``."""

from __future__ import annotations

import sys

from core.cli.common import INDEX_HELP, embedder_arg, open_index, print_skipped, status
from core.config.defaults import DEFAULT_SPEC


def args_index(p) -> None:
    p.add_argument("--catalog", required=True, help="catalog folder (catalog.csv, or <category>/<image> files)")
    p.add_argument("--out", required=True, help="index to write: a folder (Annoy), or a Milvus URI: "
                   "milvus-lite:PATH, PATH.db, http(s)://HOST:19530[?collection=NAME] (credentials: MILVUS_TOKEN)")
    embedder_arg(p, when_none=DEFAULT_SPEC)
    p.add_argument("--trees", type=int, default=None, help="Annoy trees (default: chosen by size)")
    p.add_argument("--index-type", default=None, choices=["FLAT", "IVF_FLAT", "HNSW"],
                   help="Milvus vector index (default: FLAT, exact, below 100,000 images; IVF_FLAT above)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where images are embedded: local (this process, default) or ray (Ray Data actors)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join, e.g. ray://head:10001 or auto (default: a local Ray on this machine)")
    p.add_argument("--shards", default=None, metavar="DIR",
                   help="with --engine ray: folder for the vector shards (default: a temporary folder)")


def run_index(a) -> int:
    from core.data.catalog import load_catalog
    from core.embedding import load_embedder
    from core.index import build_index

    cat = load_catalog(a.catalog)
    for w in cat.warnings:
        print(f"warning: {w}", file=sys.stderr)
    idx, rep = build_index(cat, load_embedder(a.model or DEFAULT_SPEC), a.out, trees=a.trees,
                           index_type=a.index_type, progress=True, batch_size=a.batch_size, engine=a.engine,
                           ray_address=a.ray_address, shards=a.shards)
    print_skipped(rep.skipped)
    print(f"indexed {len(idx)} products ({rep.added} images) with {idx.spec} -> {a.out}")
    print(idx.summary)
    return 0


def args_info(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)


def run_info(a) -> int:
    from core.index.factory import open_index as open_at

    idx = open_at(a.index)
    m = idx.manifest
    print(f"{a.index}: {idx.summary}")
    print(f"embedder {idx.spec} ({idx.dim}-d); catalog {m.get('catalog_root')}; written {m.get('created', '?')}")
    return 0


def args_prepare(p) -> None:
    p.add_argument("--catalog", default="sample_catalog", help="catalog folder (default: sample_catalog)")
    embedder_arg(p, when_none=DEFAULT_SPEC)
    p.add_argument("--no-regions", dest="regions", action="store_false",
                   help="skip the productness head of box finding (trained on 120 generated scenes, ~1 min)")


def run_prepare(a) -> int:
    from core.data.catalog import load_catalog
    from core.embedding import load_embedder
    from core.index.prepared import write_prepared

    status("loading the catalog and the model…")
    cat, emb = load_catalog(a.catalog), load_embedder(a.model or DEFAULT_SPEC)
    path = write_prepared(cat, emb, progress=True)
    print(f"wrote the prepared vectors -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    from core.explore.prepared_photos import write_prepared_photos

    if photos := write_prepared_photos(cat.root, emb, progress=True):  # the classifier page's labelled photos
        print(f"wrote the labelled photos' vectors -> {photos} ({photos.stat().st_size / 1e6:.1f} MB)")
    from core.explore.prepared_classifier import write_prepared_classifiers

    if fitted := write_prepared_classifiers(cat.root, emb, progress=True):  # the classifier page's classifiers
        print(f"wrote the classifier page's fitted classifiers -> {fitted} ({fitted.stat().st_size / 1e6:.1f} MB)")
    if a.regions:
        from core.search.region_head import write_prepared_head
        from core.search.regions import maps_embedder

        path = write_prepared_head(cat.root, cat.fingerprint(), maps_embedder(emb), progress=True)
        print(f"wrote the productness head of box finding -> {path}")
    return 0


def args_add(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--catalog", required=True, help="the catalog folder, with its new rows")
    embedder_arg(p)


def run_add(a) -> int:
    from core.data.catalog import load_catalog

    idx, emb = open_index(a.index, a.model)
    idx, rep = idx.add(load_catalog(a.catalog), emb, progress=True)
    print_skipped(rep.skipped)
    print(f"added {rep.added} image(s); {idx.summary}")
    return 0


def args_remove(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("product_ids", nargs="+", help="products to hide")


def run_remove(a) -> int:
    from core.index import open_index as open_at

    idx = open_at(a.index).remove(a.product_ids)
    print(f"removed {len(a.product_ids)} product(s); {len(idx)} products live")
    return 0


def args_compact(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--trees", type=int, default=None, help="Annoy trees (default: chosen by size; Milvus: ignored)")


def run_compact(a) -> int:
    from core.index import open_index as open_at

    idx = open_at(a.index).compact(trees=a.trees)
    print(f"compacted: {idx.summary}")
    return 0


def args_add_product(p) -> None:
    p.add_argument("--catalog", required=True, help="a catalog folder with catalog.csv")
    embedder_arg(p, when_none=DEFAULT_SPEC)
    p.add_argument("--id", default="", help="product id (default: a new U#### id)")
    p.add_argument("--field", action="append", default=[], metavar="COLUMN=VALUE", help="a field (repeatable)")
    p.add_argument("images", nargs="+", help="the product's image files")


def _catalog_index(a):
    from core.embedding import load_embedder
    from core.index.workspace import ensure_index

    emb = load_embedder(a.model or DEFAULT_SPEC)
    return emb, ensure_index(a.catalog, emb, progress=True)


def run_add_product(a) -> int:
    from pathlib import Path

    from core.index.catalog_edit import CatalogEditError, add_product

    fields = {}
    for f in a.field:
        if "=" not in f:
            raise CatalogEditError(f"--field {f!r}: use COLUMN=VALUE")
        k, v = f.split("=", 1)
        fields[k.strip()] = v
    emb, idx = _catalog_index(a)
    res = add_product(a.catalog, idx, emb, [Path(p) for p in a.images], fields, a.id)
    print(f"added {res.product_ids[0]} ({len(res.images)} image(s)); {len(res.index)} products live")
    if res.indexed < len(res.images):
        print_skipped(res.skipped)
        print(f"error: only {res.indexed} of {len(res.images)} image(s) of {res.product_ids[0]} could be indexed",
              file=sys.stderr)
        return 2
    return 0


def args_remove_product(p) -> None:
    p.add_argument("--catalog", required=True, help="a catalog folder with catalog.csv")
    embedder_arg(p, when_none=DEFAULT_SPEC)
    p.add_argument("product_ids", nargs="+", help="products to remove")


def run_remove_product(a) -> int:
    from core.index.catalog_edit import remove_products

    _, idx = _catalog_index(a)
    res = remove_products(a.catalog, idx, a.product_ids)
    print(f"removed {', '.join(res.product_ids)}; {len(res.index)} products live")
    return 0
