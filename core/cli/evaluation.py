"""Verbs of the evaluation stage: ``evaluate``, ``evaluate-ranking``, ``evaluate-regions``, ``evaluate-no-match``,
``bench``."""

from __future__ import annotations

import json
import sys

from core.cli.common import INDEX_HELP, embedder_arg, open_index, print_skipped, rank_args


def args_evaluate(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--queries", required=True, help="CSV with image,<label> (image paths relative to the CSV)")
    p.add_argument("--label", default="product_id", help="column that says which products are relevant")
    rank_args(p)
    p.add_argument("--failures", type=int, default=0, metavar="N",
                   help="also list N missed queries: expected product and what ranked above it (stderr)")
    embedder_arg(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run_evaluate(a) -> int:
    from core.evaluation.evaluate import evaluate, failure_details
    from core.search.ranking import parse_weights

    idx, emb = open_index(a.index, a.model)
    if a.weights and a.rank != "static":
        raise ValueError("--weights needs --rank static")
    ev = evaluate(idx, emb, a.queries, label=a.label, progress=not a.json, rank=a.rank,
                  weights=parse_weights(a.weights) if a.weights else None)
    print_skipped(ev.skipped)
    used = (", ".join(f"{d}={w:.2f}" for d, w in ev.weights.items()) + f" ({ev.weights_source})").lstrip(" ,")
    if a.json:
        print(json.dumps(ev.metrics))
        print(f"weights: {used}", file=sys.stderr)
    else:
        for k, v in ev.metrics.items():
            print(f"{k:>10}  {v:.4f}" if isinstance(v, float) else f"{k:>10}  {v}")
        print(f"{'weights':>10}  {used}")
    for f in failure_details(ev, idx, a.label)[: a.failures]:
        where = f"rank {f.rank}" if f.rank else "not in the top 10"
        above = ", ".join(f"{p} {s:.3f}" for p, s, _ in f.above[:5])
        print(f"miss: {f.query} (expected {f.expected}, {where}); above: {above}", file=sys.stderr)
    return 0


def args_evaluate_ranking(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--queries", required=True, help="test queries (also split in half when no --train-queries)")
    p.add_argument("--train-queries", default=None, help="queries to train the dynamic ranker on (disjoint)")
    p.add_argument("--label", default="product_id", help="column that says which products are relevant")
    p.add_argument("--weights", default=None, help="static weights (default: similarity 1, filters 0.25)")
    p.add_argument("--epochs", type=int, default=300, help="dynamic ranker training epochs (default 300)")
    embedder_arg(p)
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def run_evaluate_ranking(a) -> int:
    from core.evaluation.rank_eval import evaluate_ranking
    from core.search.engine import Searcher, SearchOptions
    from core.search.ranking import parse_weights

    idx, emb = open_index(a.index, a.model)
    static = None
    if a.weights:
        static = Searcher(idx, emb).weights_for(SearchOptions.make(weights=parse_weights(a.weights)))
    r = evaluate_ranking(idx, emb, a.queries, train_queries=a.train_queries, label=a.label, static=static,
                         progress=not a.json, epochs=a.epochs)
    print_skipped(r.skipped)
    if a.json:
        print(json.dumps({"metrics": r.metrics, "static_weights": r.static_weights,
                          "mean_dynamic_weights": r.mean_dynamic_weights, "training": r.training,
                          "attributes": r.attribute_reports, "n_train": r.n_train, "n_test": r.n_test}, indent=1))
        return 0
    cols = ["recall@1", "recall@5", "recall@10", "map@10"]
    print(f"dynamic ranker trained on {r.n_train} queries, evaluated on {r.n_test} others")
    print(f"{'ranking':<10}" + "".join(f"{c:>11}" for c in cols))
    for name, m in r.metrics.items():
        print(f"{name:<10}" + "".join(f"{m[c]:>11.4f}" for c in cols))
    print("static weights:       " + ", ".join(f"{d}={w:.2f}" for d, w in r.static_weights.items()))
    print("mean dynamic weights: " + ", ".join(f"{d}={w:.2f}" for d, w in r.mean_dynamic_weights.items()))
    return 0


def args_evaluate_regions(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenes", help="scene set folder with boxes.csv (write one: python -m core scenes --out DIR)")
    src.add_argument("--photos", help="real photos without boxes, one labelled product each: a queries CSV "
                                      "(image,product_id), as evaluate takes; reports whether some box finds it")
    p.add_argument("--k", type=int, default=5, help="products searched per box; top-k counts a hit (default 5)")
    from core.config.defaults import RANKS

    p.add_argument("--rank", choices=RANKS, default=None,
                   help="ranking of each box's search (default: the default search's)")
    p.add_argument("--oracle", action="store_true",
                   help="search the true boxes instead of the found ones (retrieval alone)")
    embedder_arg(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run_evaluate_regions(a) -> int:
    from core.data.query_sets import read_queries
    from core.evaluation.regions_eval import evaluate_region_photos, evaluate_regions
    from core.search.engine import Searcher
    from core.search.regions import RegionSearcher

    idx, emb = open_index(a.index, a.model)
    if a.k < 1:
        raise ValueError("--k must be at least 1")
    if a.photos and a.oracle:
        raise ValueError("--oracle needs --scenes (true boxes)")
    rs = RegionSearcher(Searcher(idx, emb, progress=not a.json), progress=not a.json)
    if a.photos:
        rows, skipped = read_queries(a.photos)
        if skipped and not a.json:
            print(f"skipped {len(skipped)} row(s) of {a.photos}: {skipped[0]}" + (" ..." if len(skipped) > 1 else ""))
        if not rows:
            raise ValueError(f"{a.photos}: no usable labelled photos")
        metrics = evaluate_region_photos(rs, rows, k=a.k, rank=a.rank, progress=not a.json)
    else:
        metrics = evaluate_regions(rs, a.scenes, k=a.k, rank=a.rank, oracle=a.oracle, progress=not a.json).metrics
    if a.json:
        print(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k:>22}  {v:.4f}" if isinstance(v, float) else f"{k:>22}  {v}")
    return 0


def args_evaluate_no_match(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--photos", required=True,
                   help="photos of products the catalog sells (a query CSV with an image column, or a folder); "
                        "kept out of the calibration")
    p.add_argument("--foreign", required=True, action="append",
                   help="photos of things the catalog does not sell (CSV or folder; may be repeated)")
    p.add_argument("--leave-out", action="append", default=[], metavar="CATALOG",
                   help="a bundled catalog (sample, demo) to keep out of the calibration's foreign pictures, e.g. "
                        "one that shares a domain with --foreign (may be repeated)")
    embedder_arg(p)
    p.add_argument("--json", action="store_true", help="print the rates as JSON")


def run_evaluate_no_match(a) -> int:
    from dataclasses import asdict

    from core.evaluation.nomatch_eval import evaluate_no_match

    idx, emb = open_index(a.index, a.model)
    r = evaluate_no_match(idx, emb, a.photos, a.foreign, leave_out=tuple(a.leave_out), progress=not a.json)
    print_skipped(r.skipped)
    if a.json:
        print(json.dumps(asdict(r) | {"skipped": len(r.skipped)}))
        return 0
    print(f"catalog photos not flagged  {r.catalog_not_flagged:.3f}  ({r.n_catalog} photos; goal >= 0.90)")
    print(f"foreign photos flagged      {r.foreign_flagged:.3f}  ({r.n_foreign} photos; goal >= 0.90)")
    print(f"threshold {r.threshold:.3f}; closeness 5/50/95%: catalog photos {r.closeness['catalog']}, "
          f"foreign {r.closeness['foreign']}")
    print(f"calibrated on {r.calibrated_on} and foreign pictures: "
          + ", ".join(f"{g} {n}" for g, n in r.negatives.items()))
    return 0
