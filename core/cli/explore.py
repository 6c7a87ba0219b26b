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
    p.add_argument("--queries", default=None,
                   help="held-out photos to test on: a CSV, or a <category>/<image> folder tree (default: the "
                        "catalog's first labelled set not marked train, e.g. queries-val.csv)")
    p.add_argument("--root", default=None, help="folder the CSV's image paths are relative to (default: its own)")
    p.add_argument("--train", default="auto",
                   help="labelled photos the classifier learns from: a CSV or folder tree, 'catalog' (the "
                        "catalog's own pictures) or auto (default: the catalog's queries-train.csv, else 'catalog')")
    p.add_argument("--train-root", default=None, help="folder the --train CSV's image paths are relative to")
    p.add_argument("--label", default="auto",
                   help="product_id or a catalog column (default auto: the first of product_id, category, ... on "
                        "which the classifier is right where the nearest product is wrong for some photo)")
    p.add_argument("--head", default="auto", metavar="SPEC",
                   help="trained-head embedder whose nearest products are compared too: a +head: spec, none, or "
                        "auto (default: --model's head if it is one, else the head the catalog ships)")
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


def _compared(idx, emb, head: str):
    """(pretrained index and embedder, trained head's or None) for ``--head``."""
    from core.embedding import load_embedder
    from core.explore.disagreements import embedders_to_compare
    from core.index.workspace import ensure_index

    pre_spec, head_spec = embedders_to_compare(emb.spec, idx.catalog_root)
    if head != "auto":
        head_spec = None if head == "none" else head
    if pre_spec != emb.spec:  # --model is a head: its base is the pretrained one
        emb = load_embedder(pre_spec)
        idx = ensure_index(idx.catalog_root, emb, progress=True)
    if head_spec is None:
        return (idx, emb), None
    t_emb = load_embedder(head_spec)
    t_idx = idx if t_emb.spec == emb.spec else ensure_index(idx.catalog_root, t_emb, progress=True)
    return (idx, emb), (t_idx, t_emb)


def run_disagreements(a) -> int:
    from core.explore.disagreements import compare, default_label_order, first_with_cases, label_choices
    from core.explore.photo_sets import PhotoVectors, held_out_sets, training_sets

    idx, emb = open_index(a.index, a.model)
    (idx, emb), trained = _compared(idx, emb, a.head)
    queries = a.queries or next((str(s.path) for s in held_out_sets(idx.catalog_root)), None)
    if queries is None:
        raise ValueError(f"{idx.catalog_root} has no labelled photos to test on: give --queries")
    train = a.train
    if train == "auto":
        train = next((str(s.path) for s in training_sets(idx.catalog_root)), "catalog")
    memo = PhotoVectors()

    def report(label: str):
        return compare(idx, emb, queries, label, root=a.root, train=None if train == "catalog" else train,
                       train_root=a.train_root, trained=trained, progress=not a.json, vectors=memo)

    if a.label == "auto":
        rep = first_with_cases([c for c in default_label_order(idx) if c in label_choices(idx)], report)
    else:
        rep = report(a.label)
    if a.json:
        print(json.dumps(rep.to_dict(), indent=1))
        return 0
    print_skipped(rep.skipped)
    print(f"{len(rep.cases)} held-out photos ({rep.tested_on}), label {rep.label!r}, {len(rep.classifier.values)} "
          f"classes; the classifier learned from {rep.n_train} photos ({rep.trained_on})")
    print(f"  classifier accuracy                     {rep.accuracy_classifier:.4f}")
    print(f"  nearest-neighbour accuracy (pretrained) {rep.accuracy_neighbour:.4f}  {emb.spec}")
    if rep.accuracy_trained is not None:
        print(f"  nearest-neighbour accuracy (trained)    {rep.accuracy_trained:.4f}  {rep.trained_spec}")
    for k, v in rep.counts().items():
        print(f"  {k:<16} {v}")
    if rep.trained_spec:
        print(f"  the trained head fixes {len(rep.fixed())} of {rep.counts()['classifier_only']} "
              "'classifier right, neighbour wrong' photos")
    for kind in ("classifier_only", "neighbour_only"):
        print(f"{kind.replace('_', ' ')} right:")
        for c in rep.of_kind(kind)[: a.limit]:
            print(f"  {c.image}  true={c.label}  classifier={c.clf_label} ({c.clf_prob:.2f})  "
                  f"neighbour={c.nn_product}/{c.nn_label} (distance {c.nn_distance:.3f})"
                  + (f"  trained={c.trained_product}/{c.trained_label}" if c.trained_product else ""))
    return 0
