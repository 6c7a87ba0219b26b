"""CLI verbs of the attribute/ranking stack: attributes, rank-search, rank-train, evaluate-ranking."""

from __future__ import annotations

import json
import sys


def _load(a):
    from .cli import _embedder
    from .index import ProductIndex

    emb = _embedder(a.model, a.index)
    return emb, ProductIndex.load(a.index, emb)


def cmd_attributes(a) -> int:
    from .attributes import attributes_for

    emb, idx = _load(a)
    aset = attributes_for(idx, emb, progress=not a.json, rebuild=a.rebuild)
    if a.json:
        print(json.dumps(aset.reports, indent=1))
        return 0
    for name, r in aset.reports.items():
        acc = r.get("cv_accuracy", r.get("accuracy"))
        detail = f"accuracy {acc:.3f} vs majority {r['baseline']:.3f} (n={r['n']})" if acc is not None else ""
        print(f"{name:>16}  {r['source']:<9}  {'offered' if r['offered'] else 'NOT offered (chance)':<20}  {detail}")
    return 0


def _weights(a, dims):
    from .ranking import RankingError, default_weights, load_presets, parse_weights, save_preset

    w = default_weights(dims)
    if a.preset:
        presets = load_presets()
        if a.preset not in presets:
            raise RankingError(f"no preset {a.preset!r} (saved: {', '.join(presets) or 'none'})")
        w = {d: 0.0 for d in dims} | {k: v for k, v in presets[a.preset].items() if k in dims}
    w.update(parse_weights(a.weights, dims))
    if a.save_preset:
        print(f"saved preset {a.save_preset} -> {save_preset(a.save_preset, w)}", file=sys.stderr)
    return w


def cmd_rank_search(a) -> int:
    from .attributes import attributes_for
    from .ranking import Ranker, load_model, load_query, model_dir, model_key, ranked_search

    emb, idx = _load(a)
    ranker = Ranker(idx, attributes_for(idx, emb, progress=not a.json))
    weights = _weights(a, ranker.dims)
    net = load_model(model_dir(idx), model_key(ranker, emb))[0] if a.rank == "dynamic" else None
    out = {}
    for src in a.images:
        vec, img = load_query(emb, src)
        out[src] = ranked_search(ranker, vec, img, mode=a.rank, weights=weights, net=net, k=a.k,
                                 where=a.where or None)
    if a.json:
        print(json.dumps({k: {"weights": r.weights, "query_attributes": r.query_attributes,
                              "hits": [h.to_dict() for h in r.hits]} for k, r in out.items()}, indent=1))
        return 0
    for src, r in out.items():
        print(f"{src}:  ({a.rank}; weights " + ", ".join(f"{d}={w:.2f}" for d, w in r.weights.items()) + ")")
        for d, probs in r.query_attributes.items():
            top = sorted(probs.items(), key=lambda kv: -kv[1])[:2]
            print(f"    query {d}: " + ", ".join(f"{v} {p:.2f}" for v, p in top))
        for h in r.hits:
            why = "  ".join(f"{d}={c:+.3f}" for d, c in h.contributions.items() if c)
            print(f"  {h.rank:>3}  {h.score:.4f}  {h.product_id}  {h.fields.get('title', '')}   [{why}]")
    return 0


def cmd_rank_train(a) -> int:
    from .cli import _print_skipped
    from .rank_eval import train_dynamic

    emb, idx = _load(a)
    _, meta, skipped = train_dynamic(idx, emb, a.queries, label=a.label, progress=True, epochs=a.epochs)
    _print_skipped(skipped)
    t = meta["training"]
    print(f"trained the dynamic ranker on {t['n_train']} queries (loss {t['loss_first']:.3f} -> {t['loss_last']:.3f})")
    return 0


def cmd_evaluate_ranking(a) -> int:
    from .cli import _print_skipped
    from .rank_eval import evaluate_ranking
    from .ranking import default_weights, parse_weights

    emb, idx = _load(a)
    static = None
    if a.weights:
        from .attributes import attributes_for

        dims = ["similarity", *attributes_for(idx, emb).dims]
        static = default_weights(dims) | parse_weights(a.weights, dims)
    r = evaluate_ranking(idx, emb, a.queries, train_queries=a.train_queries, label=a.label, static=static,
                         progress=not a.json, epochs=a.epochs)
    _print_skipped(r.skipped)
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


def register_cli(sub) -> None:
    s = sub.add_parser("attributes", help="train/show attribute scorers of an index (heads at chance are dropped)")
    s.add_argument("--index", required=True)
    s.add_argument("--model", default=None)
    s.add_argument("--rebuild", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_attributes)

    s = sub.add_parser("rank-search", help="search ranked by similarity + attribute filters, with explanations")
    s.add_argument("--index", required=True)
    s.add_argument("images", nargs="+")
    s.add_argument("--rank", choices=["distance", "static", "dynamic"], default="static")
    s.add_argument("--weights", default=None, help="static weights, e.g. similarity=1,pixel_colour=2,pattern=1")
    s.add_argument("--preset", default=None, help="start from a saved preset")
    s.add_argument("--save-preset", default=None, help="save the resulting weights under this name")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--where", action="append", help="filter, e.g. category=shoe (repeatable)")
    s.add_argument("--model", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_rank_search)

    s = sub.add_parser("rank-train", help="train the dynamic ranker on labelled queries")
    s.add_argument("--index", required=True)
    s.add_argument("--queries", required=True)
    s.add_argument("--label", default="product_id")
    s.add_argument("--epochs", type=int, default=300)
    s.add_argument("--model", default=None)
    s.set_defaults(fn=cmd_rank_train)

    s = sub.add_parser("evaluate-ranking", help="distance vs static vs dynamic ranking on the same queries")
    s.add_argument("--index", required=True)
    s.add_argument("--queries", required=True, help="test queries (also split in half when no --train-queries)")
    s.add_argument("--train-queries", default=None, help="queries to train the dynamic ranker on (disjoint)")
    s.add_argument("--label", default="product_id")
    s.add_argument("--weights", default=None, help="static weights (default: similarity 1, filters 0.25)")
    s.add_argument("--epochs", type=int, default=300)
    s.add_argument("--model", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_evaluate_ranking)
