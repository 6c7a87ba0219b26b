"""``python -m core <verb>``: every pipeline stage is also a command. Bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from .catalog import CatalogError
from .images import ImageError
from .store import StoreError

#: Modules that add their own verbs with ``register_cli(subparsers)``.
PLUGIN_MODULES: list[str] = ["bench", "catalog_edit", "explore_cli", "importers", "metric.cli", "ranking_cli"]

USER_ERRORS = (ValueError, CatalogError, ImageError, StoreError, FileNotFoundError, PermissionError)


def _embedder(spec: str | None, index_dir: str | None = None):
    from .embedders import DEFAULT_SPEC, load_embedder
    from .index import ProductIndex

    if spec is None and index_dir:
        spec = ProductIndex.load(index_dir).spec
    return load_embedder(spec or DEFAULT_SPEC)


def cmd_sample(a) -> int:
    from .sample import write_sample

    out = write_sample(a.out)
    print(f"wrote {out}")
    return 0


def _print_skipped(skipped: list[str], limit: int = 20) -> None:
    if skipped:
        print(f"skipped {len(skipped)} row(s):", file=sys.stderr)
        for s in skipped[:limit]:
            print(f"  {s}", file=sys.stderr)
        if len(skipped) > limit:
            print(f"  ... and {len(skipped) - limit} more", file=sys.stderr)


def cmd_index(a) -> int:
    from .catalog import load_catalog
    from .index import ProductIndex

    cat = load_catalog(a.catalog)
    for w in cat.warnings:
        print(f"warning: {w}", file=sys.stderr)
    idx, rep = ProductIndex.build(cat, _embedder(a.model), a.out, trees=a.trees, progress=True,
                                  batch_size=a.batch_size)
    _print_skipped(rep.skipped)
    print(f"indexed {len(idx)} products ({rep.added} images) with {idx.spec} -> {a.out}")
    return 0


def _ranker(a, idx, emb):
    """The attribute ranker (None for ``--rank distance``), the parsed ``--weights`` and the dynamic model."""
    from .ranking import load_model, model_dir, model_key, parse_weights
    from .search import make_ranker

    if a.weights and a.rank != "static":
        raise ValueError("--weights needs --rank static")
    if a.rank == "distance":
        return None, None, None
    ranker = make_ranker(idx, emb, progress=not a.json)
    net = load_model(model_dir(idx), model_key(ranker, emb))[0] if a.rank == "dynamic" else None
    return ranker, (parse_weights(a.weights, ranker.dims) if a.weights else None), net


def cmd_search(a) -> int:
    from .images import open_image
    from .index import ProductIndex
    from .search import search_products

    emb = _embedder(a.model, a.index)
    idx = ProductIndex.load(a.index, emb)
    ranker, weights, net = _ranker(a, idx, emb)
    out, failed = {}, 0
    for img in a.images:
        try:
            im = open_image(img, draft_size=emb.image_size)
        except ImageError as e:  # one line per unusable image; the others are still searched
            print(f"error: {img}: {e}", file=sys.stderr)
            failed += 1
            continue
        q = emb.embed_images([im])[0]
        out[img] = search_products(idx, q, im, k=a.k, where=a.where or None, min_score=a.min_score, rank=a.rank,
                                   ranker=ranker, weights=weights, net=net)
    if a.json:
        print(json.dumps({k: [h.to_dict() for h in v] for k, v in out.items()}, indent=1))
    else:
        for img, hits in out.items():
            print(f"{img}:")
            for h in hits:
                title = h.fields.get("title", "")
                print(f"  {h.rank:>3}  {h.score:.4f}  {h.product_id}  {title}")
    return 2 if failed else 0


def cmd_add(a) -> int:
    from .catalog import load_catalog
    from .index import ProductIndex

    emb = _embedder(a.model, a.index)
    idx = ProductIndex.load(a.index, emb)
    idx, rep = idx.add(load_catalog(a.catalog), emb, progress=True)
    _print_skipped(rep.skipped)
    print(f"added {rep.added} image(s); {len(idx)} products live, {idx.manifest['n_delta']} in the delta set")
    return 0


def cmd_remove(a) -> int:
    from .index import ProductIndex

    idx = ProductIndex.load(a.index).remove(a.product_ids)
    print(f"removed {len(a.product_ids)} product(s); {len(idx)} products live")
    return 0


def cmd_compact(a) -> int:
    from .index import ProductIndex

    idx = ProductIndex.load(a.index).compact(trees=a.trees)
    print(f"compacted: {len(idx)} products, {idx.manifest['n_vectors']} vectors, {idx.manifest['trees']} trees")
    return 0


def cmd_evaluate(a) -> int:
    from .evaluate import evaluate
    from .index import ProductIndex

    emb = _embedder(a.model, a.index)
    idx = ProductIndex.load(a.index, emb)
    ranker, weights, net = _ranker(a, idx, emb)
    ev = evaluate(idx, emb, a.queries, label=a.label, progress=not a.json, rank=a.rank, ranker=ranker,
                  weights=weights, net=net)
    _print_skipped(ev.skipped)
    if a.json:
        print(json.dumps(ev.metrics))
    else:
        for k, v in ev.metrics.items():
            print(f"{k:>10}  {v:.4f}" if isinstance(v, float) else f"{k:>10}  {v}")
    if a.failures:
        from .evaluate import failure_details

        for f in failure_details(ev, idx, a.label)[: a.failures]:
            where = f"rank {f.rank}" if f.rank else "not in the top 10"
            above = ", ".join(f"{p} {s:.3f}" for p, s, _ in f.above[:5])
            print(f"miss: {f.query} (expected {f.expected}, {where}); above: {above}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Visual product search engine")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("sample", help="generate the procedural sample catalog")
    s.add_argument("--out", default="sample_catalog")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("index", help="embed a catalog and build an index")
    s.add_argument("--catalog", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--model", default=None, help="embedder spec (default efficientnet-lite0)")
    s.add_argument("--trees", type=int, default=None, help="Annoy trees (default: chosen by size)")
    s.add_argument("--batch-size", type=int, default=32)
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("search", help="search an index with image files")
    s.add_argument("--index", required=True)
    s.add_argument("images", nargs="+")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--where", action="append", help="filter, e.g. category=shoe,bag or price<50 (repeatable)")
    s.add_argument("--min-score", type=float, default=None)
    s.add_argument("--model", default=None, help="embedder spec (default: the index's)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--rank", choices=["static", "dynamic", "distance"], default="static",
                   help="static (default): re-rank by the attribute filters with fixed weights; dynamic: per-query "
                        "weights from the model trained by rank-train; distance: nearest neighbours only")
    s.add_argument("--weights", default=None, help="static weights, e.g. similarity=1,pixel_colour=0.5")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser("add", help="index catalog rows that are not in the index yet (no rebuild)")
    s.add_argument("--index", required=True)
    s.add_argument("--catalog", required=True)
    s.add_argument("--model", default=None)
    s.set_defaults(fn=cmd_add)

    s = sub.add_parser("remove", help="hide products from search (tombstones)")
    s.add_argument("--index", required=True)
    s.add_argument("product_ids", nargs="+")
    s.set_defaults(fn=cmd_remove)

    s = sub.add_parser("compact", help="drop removed products and rebuild Annoy from stored vectors")
    s.add_argument("--index", required=True)
    s.add_argument("--trees", type=int, default=None)
    s.set_defaults(fn=cmd_compact)

    s = sub.add_parser("evaluate", help="recall@K and mAP@10 on labelled queries")
    s.add_argument("--index", required=True)
    s.add_argument("--queries", required=True, help="CSV with image,<label> (paths relative to the CSV)")
    s.add_argument("--label", default="product_id", help="column that says which products are relevant")
    s.add_argument("--model", default=None)
    s.add_argument("--json", action="store_true")
    s.add_argument("--failures", type=int, default=0, metavar="N",
                   help="also list N missed queries: expected product and what ranked above it (stderr)")
    s.add_argument("--rank", choices=["static", "dynamic", "distance"], default="static",
                   help="static (default): re-rank by the attribute filters with fixed weights; dynamic: per-query "
                        "weights from the model trained by rank-train; distance: nearest neighbours only")
    s.add_argument("--weights", default=None, help="static weights, e.g. similarity=1,pixel_colour=0.5")
    s.set_defaults(fn=cmd_evaluate)

    for mod in PLUGIN_MODULES:
        importlib.import_module(f"core.{mod}").register_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except USER_ERRORS as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
