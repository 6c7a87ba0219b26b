"""Verbs of the search stage: ``search`` (``--explain`` for weights and contributions), ``attributes``,
``rank-train``."""

from __future__ import annotations

import json
import sys

from core.cli.common import INDEX_HELP, embedder_arg, open_index, print_skipped, rank_args, status


def args_search(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("images", nargs="+", help="query photos")
    p.add_argument("--k", type=int, default=10, help="products to return (default 10)")
    p.add_argument("--where", action="append", metavar="FILTER",
                   help="filter, e.g. category=shoe,bag or price<50 or price=10..50 (repeatable; ANDed)")
    p.add_argument("--min-score", type=float, default=None, help="minimum cosine similarity of a result")
    rank_args(p)
    p.add_argument("--preset", default=None, help="start from a saved static weight preset")
    p.add_argument("--save-preset", default=None, metavar="NAME", help="save the resulting static weights")
    p.add_argument("--explain", action="store_true",
                   help="also print the weights, the query's predicted attributes and each result's contributions")
    p.add_argument("--regions", action="store_true",
                   help="find the products in each photo (shelf, outfit, table) and search each box separately")
    embedder_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON (hits, weights, query attributes, timing)")


def _weights(a, searcher) -> dict[str, float] | None:
    """The static weights asked for: a preset and/or ``--weights``, saved under ``--save-preset``."""
    from core.search.ranking import RankingError, load_presets, parse_weights, save_preset

    if a.rank != "static" and (a.weights or a.preset or a.save_preset):
        raise RankingError("--weights, --preset and --save-preset need --rank static")
    if not (a.weights or a.preset or a.save_preset):
        return None
    dims = searcher.dims
    w = {}
    if a.preset:
        presets = load_presets()
        if a.preset not in presets:
            raise RankingError(f"no preset {a.preset!r} (saved: {', '.join(presets) or 'none'})")
        w = {d: 0.0 for d in dims} | {k: v for k, v in presets[a.preset].items() if k in dims}
    w.update(parse_weights(a.weights, dims))
    if a.save_preset:
        from core.search.engine import SearchOptions

        full = searcher.weights_for(SearchOptions.make(weights=w))
        print(f"saved preset {a.save_preset} -> {save_preset(a.save_preset, full)}", file=sys.stderr)
    return w


def run_search(a) -> int:
    if not a.json:  # at once: the model, the index and a new index's attribute filters take seconds to load
        status(f"loading the index {a.index} and its embedder…")
    from core.data.images import ImageError
    from core.embedding.query import embed_query
    from core.search.engine import Searcher, SearchOptions

    idx, emb = open_index(a.index, a.model)
    searcher = Searcher(idx, emb, progress=not a.json)
    opts = SearchOptions.make(k=a.k, where=a.where, min_similarity=a.min_score, rank=a.rank,
                              weights=_weights(a, searcher))
    if a.regions:
        return _search_regions(a, searcher, opts)
    out, failed = {}, 0
    for img in a.images:
        try:
            q = embed_query(emb, img, name=img)
        except ImageError as e:  # one line per unusable image; the others are still searched
            print(f"error: {img}: {e}", file=sys.stderr)
            failed += 1
            continue
        out[img] = searcher.search(q, opts)
    if a.json:
        print(json.dumps({k: r.to_dict() for k, r in out.items()}, indent=1))
        return 2 if failed else 0
    for img, r in out.items():
        print(f"{img}:" + (f"  ({r.rank}; weights " + ", ".join(f"{d}={w:.2f}" for d, w in r.weights.items())
                           + f"; {r.seconds * 1000:.0f} ms)" if a.explain else ""))
        if a.explain:
            for d, probs in r.query_attributes.items():
                top = sorted(probs.items(), key=lambda kv: -kv[1])[:2]
                print(f"    query {d}: " + ", ".join(f"{v} {p:.2f}" for v, p in top))
        if r.no_close_match:
            print(f"  no close match: the photo's closeness {r.closeness:.3f} is below this catalog's threshold "
                  f"{r.threshold:.3f}; these are the nearest products anyway")
        for h in r.hits:
            line = f"  {h.rank:>3}  {h.score:.4f}  {h.product_id}  {h.fields.get('title', '')}"
            if a.explain:
                line += f"   similarity {h.similarity:.4f} [" + "  ".join(
                    f"{d}={c:+.3f}" for d, c in h.contributions.items() if c) + "]"
            print(line)
    return 2 if failed else 0


def _search_regions(a, searcher, opts) -> int:
    """``search --regions``: each photo's boxes, numbered, with the top hits of each."""
    from core.data.images import ImageError
    from core.search.regions import RegionSearcher

    if a.explain:
        raise ValueError("--explain applies to whole-photo searches; drop it with --regions")
    rs = RegionSearcher(searcher, progress=not a.json)
    out, failed = {}, 0
    for img in a.images:
        try:
            out[img] = rs.search(img, opts)
        except ImageError as e:
            print(f"error: {img}: {e}", file=sys.stderr)
            failed += 1
    if a.json:
        print(json.dumps({k: r.to_dict() for k, r in out.items()}, indent=1))
        return 2 if failed else 0
    for img, r in out.items():
        print(f"{img}: {len(r.regions)} product(s) found in {r.seconds['total']:.2f} s")
        for n, reg in enumerate(r.regions, start=1):
            print(f"  [{n}] box {','.join(map(str, reg.box))}  score {reg.score:.2f}"
                  + ("  (no close match)" if reg.no_close_match else ""))
            for h in reg.hits:
                print(f"      {h.rank:>3}  {h.score:.4f}  {h.product_id}  {h.fields.get('title', '')}")
    return 2 if failed else 0


def args_attributes(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    embedder_arg(p)
    p.add_argument("--rebuild", action="store_true", help="train the attribute heads again")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")


def run_attributes(a) -> int:
    from core.search.attributes import attributes_for
    from core.search.tuning import tuned_attributes

    idx, emb = open_index(a.index, a.model)
    attributes_for(idx, emb, progress=not a.json, rebuild=a.rebuild)
    aset = tuned_attributes(idx, emb)
    if a.json:
        print(json.dumps(aset.reports, indent=1))
        return 0
    for name, r in aset.reports.items():
        acc = r.get("cv_accuracy", r.get("accuracy"))
        detail = f"accuracy {acc:.3f} vs majority {r['baseline']:.3f} (n={r['n']})" if acc is not None else ""
        print(f"{name:>16}  {r['source']:<9}  {'offered' if r['offered'] else 'NOT offered (chance)':<20}  {detail}")
    w = aset.meta["static_weights"]
    print("default weights: " + ", ".join(f"{d}={x:.2f}" for d, x in w["weights"].items())
          + f" ({w['chosen']}, from {w['source']})")
    if aset.needs_retraining:
        print(f"{aset.changed_since_training} products changed since the heads were trained: retrain them with "
              "--rebuild")
    return 0


def args_rank_train(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--queries", required=True, help="labelled queries CSV (image,<label>)")
    p.add_argument("--label", default="product_id", help="column that says which products are relevant")
    p.add_argument("--epochs", type=int, default=300, help="training epochs (default 300)")
    embedder_arg(p)


def run_rank_train(a) -> int:
    from core.evaluation.rank_eval import train_dynamic

    idx, emb = open_index(a.index, a.model)
    _, meta, skipped = train_dynamic(idx, emb, a.queries, label=a.label, progress=True, epochs=a.epochs)
    print_skipped(skipped)
    t = meta["training"]
    print(f"trained the dynamic ranker on {t['n_train']} queries (loss {t['loss_first']:.3f} -> {t['loss_last']:.3f})")
    return 0
