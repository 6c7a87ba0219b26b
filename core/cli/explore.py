"""Verbs of the explore stage: ``map`` (UMAP of an index) and ``disagreements`` (classifier vs neighbour)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from core.cli.common import INDEX_HELP, embedder_arg, open_index, print_skipped


def args_map(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--out", required=True, help="FILE.html (interactive plot) or FILE.csv (coordinates)")
    p.add_argument("--colour", default="category", help="column that colours the points (HTML)")
    p.add_argument("--n-neighbors", type=int, default=15, help="UMAP neighbourhood size (default 15)")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP minimum distance (default 0.1)")
    p.add_argument("--metric", default="cosine", help="UMAP metric (default cosine)")
    embedder_arg(p)


def args_disagreements(p) -> None:
    p.add_argument("--index", required=True, help=INDEX_HELP)
    p.add_argument("--queries", required=True, help="queries CSV, or a <category>/<image> folder tree")
    p.add_argument("--root", default=None, help="folder the CSV's image paths are relative to (default: its own)")
    p.add_argument("--label", default="category", help="product_id or a catalog column (default category)")
    p.add_argument("--limit", type=int, default=10, help="cases of each kind to print (default 10)")
    embedder_arg(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run_map(a) -> int:
    from core.explore.map_view import map_figure, map_table
    from core.explore.projection import UmapParams, project

    idx, _ = open_index(a.index, a.model)
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


def run_disagreements(a) -> int:
    from core.explore.disagreements import compare

    idx, emb = open_index(a.index, a.model)
    rep = compare(idx, emb, a.queries, a.label, root=a.root, progress=not a.json)
    if a.json:
        print(json.dumps(rep.to_dict(), indent=1))
        return 0
    print_skipped(rep.skipped)
    print(f"{len(rep.cases)} queries, label {a.label!r}, {len(rep.head.values)} classes")
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
