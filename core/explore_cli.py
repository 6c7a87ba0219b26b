"""CLI verbs for exploring the embedding space: ``map``, ``disagreements``, ``folder-queries``, ``bench-umap``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def _load(index_dir: str, model: str | None):
    from .cli import _embedder
    from .index import ProductIndex

    emb = _embedder(model, index_dir)
    return ProductIndex.load(index_dir, emb), emb


def cmd_map(a) -> int:
    from .map_view import map_figure, map_table
    from .projection import UmapParams, project

    idx, _ = _load(a.index, a.model)
    proj = project(idx, UmapParams(a.n_neighbors, a.min_dist, a.metric), progress=True)
    m = proj.manifest
    print(f"{'reused cached' if proj.reused else 'computed'} map of {m['n_points']} images "
          f"(fitted on {m['n_fit']}, {m['fit_seconds']} s)", file=sys.stderr)
    rows = map_table(idx, proj)
    out = Path(a.out)
    if out.suffix.lower() == ".csv":
        cols = list(dict.fromkeys(k for r in rows for k in r))
        with open(out, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, cols)
            w.writeheader()
            w.writerows(rows)
    elif out.suffix.lower() in (".html", ".htm"):
        map_figure(rows, a.colour, f"{idx.spec} — {m['n_points']} images").write_html(out, include_plotlyjs=True)
    else:
        raise ValueError(f"--out must end in .html or .csv (got {out.name})")
    print(f"wrote {out}")
    return 0


def cmd_disagreements(a) -> int:
    from .disagreements import compare

    idx, emb = _load(a.index, a.model)
    rep = compare(idx, emb, a.queries, a.label, root=a.root, progress=not a.json)
    if a.json:
        print(json.dumps(rep.to_dict(), indent=1))
        return 0
    for s in rep.skipped[:20]:
        print(f"skipped: {s}", file=sys.stderr)
    print(f"{len(rep.cases)} queries, label {a.label!r}, {len(rep.head.classes)} classes")
    print(f"  classifier accuracy       {rep.accuracy_classifier:.4f}")
    print(f"  nearest-neighbour accuracy {rep.accuracy_neighbour:.4f}")
    for k, v in rep.counts().items():
        print(f"  {k:<16} {v}")
    for kind in ("classifier_only", "neighbour_only"):
        print(f"{kind.replace('_', ' ')} right:")
        for c in rep.of_kind(kind)[: a.limit]:
            print(f"  {c.image}  true={c.label}  classifier={c.clf_label} ({c.clf_prob:.2f})  "
                  f"neighbour={c.nn_product}/{c.nn_label} (distance {c.nn_distance:.3f})")
    return 0


def cmd_folder_queries(a) -> int:
    from .labelled_queries import write_folder_queries

    out = write_folder_queries(a.tree, a.out)
    print(f"wrote {out} (read it with --root {a.tree})")
    return 0


def cmd_bench_umap(a) -> int:
    from .projection import MAX_FIT, bench_umap

    print(f"UMAP first projection (synthetic {a.dim}-d clustered vectors; fit on at most {MAX_FIT}, "
          "transform the rest):")
    for r in bench_umap(a.n, dim=a.dim):
        print(f"  n={r['n']:>7}  fitted on {r['n_fit']:>6}  {r['seconds']:>7.1f} s", flush=True)
    return 0


def _umap_args(s) -> None:
    s.add_argument("--n-neighbors", type=int, default=15)
    s.add_argument("--min-dist", type=float, default=0.1)
    s.add_argument("--metric", default="cosine")


def register_cli(sub) -> None:
    s = sub.add_parser("map", help="2D UMAP map of an index (cached) as an HTML plot or a CSV")
    s.add_argument("--index", required=True)
    s.add_argument("--out", required=True, help="FILE.html or FILE.csv")
    s.add_argument("--colour", default="category", help="column that colours the points (HTML)")
    s.add_argument("--model", default=None)
    _umap_args(s)
    s.set_defaults(fn=cmd_map)

    s = sub.add_parser("disagreements", help="softmax classifier versus nearest neighbour on labelled queries")
    s.add_argument("--index", required=True)
    s.add_argument("--queries", required=True, help="queries CSV, or a <category>/<image> folder tree")
    s.add_argument("--root", default=None, help="folder the CSV's image paths are relative to (default: its own)")
    s.add_argument("--label", default="category", help="product_id or a catalog column")
    s.add_argument("--limit", type=int, default=10, help="cases of each kind to print")
    s.add_argument("--model", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_disagreements)

    s = sub.add_parser("folder-queries", help="write a queries CSV (image,category) for a <category>/<image> tree")
    s.add_argument("tree")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_folder_queries)

    s = sub.add_parser("bench-umap", help="time the first UMAP projection at several sizes")
    s.add_argument("--n", type=int, nargs="+", default=[10_000, 50_000])
    s.add_argument("--dim", type=int, default=1280, help="vector size (1280: efficientnet-lite0)")
    s.set_defaults(fn=cmd_bench_umap)
