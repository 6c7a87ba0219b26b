"""Measurements of ``train-metric --from-catalog`` on an imported GroceryStore dataset (docs/metric_learning.md,
"Training from the catalog alone"): the head trained on synthetic shop photos against the pretrained base, each
effect of the synthetic photos left out in turn, labelled photos added (the curve of labels against recall),
and products held out of training.

    python scripts/catalog_training.py --data DIR --runs base,catalog,labels --seeds 0,1,2 --out results.jsonl

``DIR`` is ``python -m core import grocery ... --out DIR``. Each run prints one JSON line (val recall@1/5 of
the head, its held-out figures, epochs, seconds) and appends it to ``--out``. Features come from the feature
cache (``VPS_CACHE``), so a second run with the same photos costs the training only.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.catalog import load_catalog  # noqa: E402
from core.data.query_sets import read_queries  # noqa: E402
from core.data.shop_views import AUGMENTATIONS  # noqa: E402
from core.embedding import load_embedder  # noqa: E402
from core.embedding.query import embed_queries  # noqa: E402
from core.metric.features import embed_cached  # noqa: E402
from core.metric.train import (  # noqa: E402
    FROM_CATALOG,
    FROM_CATALOG_BASE,
    TrainConfig,
    recall_at,
    train_head,
    training_samples,
)

BASE = "efficientnet-lite0:ms"  # with labelled photos (train-metric's default)
CATALOG = {**FROM_CATALOG}  # what --from-catalog alone trains with, on FROM_CATALOG_BASE


def runs() -> dict[str, tuple[object, dict, float]]:
    """name -> (labelled photos: None, "all" or k per product; TrainConfig changes; share of products held out)."""
    out: dict[str, tuple[object, dict, float]] = {
        "catalog": (None, CATALOG, 0.0),
        "catalog-identity": (None, {**CATALOG, "head_init": "identity"}, 0.0),
        "catalog-views4": (None, {**CATALOG, "shop_views": 4}, 0.0),
        "catalog-views24": (None, {**CATALOG, "shop_views": 24}, 0.0),
        "catalog-zooms": (None, {**CATALOG, "query_zooms": "1,0.8,0.65"}, 0.0),
        "labelled": ("all", {}, 0.0),
        "labelled+shop": ("all", {"shop_views": CATALOG["shop_views"]}, 0.0),
        "heldout-products": ("all", {"shop_views": CATALOG["shop_views"]}, 0.2),
        "heldout-products-catalog": (None, CATALOG, 0.2),
    }
    for aug in AUGMENTATIONS:
        out[f"catalog-no-{aug}"] = (None, {**CATALOG, "shop_augs": ",".join(a for a in AUGMENTATIONS if a != aug)},
                                    0.0)
    for k in (1, 3, 10):
        out[f"labels{k}+shop"] = (k, {"shop_views": CATALOG["shop_views"]}, 0.0)
        out[f"labels{k}"] = (k, {}, 0.0)
    out["heldout-products-labelled"] = ("all", {}, 0.2)
    return out


def first_per_label(views_csv: Path, k: int, out: Path) -> Path:
    """The first ``k`` labelled photos of each product of ``views_csv``, as a CSV at ``out`` (in the same
    folder: image paths stay relative)."""
    with open(views_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    seen: dict[str, int] = {}
    keep = []
    for r in rows:
        if seen.get(r["product_id"], 0) < k:
            seen[r["product_id"]] = seen.get(r["product_id"], 0) + 1
            keep.append(r)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return out


def val_recall(emb, data: Path, subsets: dict[str, set[str]] | None = None) -> dict:
    """recall@1/5 of the val photos against the catalog (the query zooms of ``emb`` as search applies them),
    overall and per subset of products."""
    cat = load_catalog(data / "catalog")
    ref, _ = embed_cached(emb, [cat.path(r) for r in cat.rows])
    q, _ = read_queries(data / "queries-val.csv")
    if tuple(getattr(emb, "query_zooms", (1.0,))) == (1.0,):
        qv, err = embed_cached(emb, [p for p, _ in q])
    else:
        found, err = embed_queries(emb, [p for p, _ in q])
        qv = np.stack([f.vector for f in found if f is not None])
    lab = np.array([lab for i, (_, lab) in enumerate(q) if i not in err], dtype=object)
    ref_lab = np.array([r.product_id for r in cat.rows], dtype=object)
    out = {"all": recall_at(torch.from_numpy(qv), lab, torch.from_numpy(ref), ref_lab)}
    for name, keep in (subsets or {}).items():
        m = np.array([x in keep for x in lab])
        out[name] = recall_at(torch.from_numpy(qv[m]), lab[m], torch.from_numpy(ref), ref_lab)
    return {k: {m: round(v, 4) for m, v in d.items()} for k, d in out.items()}


def run(name: str, seed: int, data: Path, work: Path) -> dict:
    views, changes, held_share = runs()[name]
    cfg = replace(TrainConfig(seed=seed), **changes)
    views_arg = None
    if views == "all":
        views_arg = data / "views"
    elif views is not None:
        views_arg = first_per_label(data / "views" / "views.csv", int(views), data / "views" / f"first{views}.csv")
    samples = training_samples(data / "catalog", views_arg, cfg.label)
    subsets = None
    if held_share:
        labels = sorted({s.label for s in samples})
        held = set(labels[:: round(1 / held_share)])  # every 5th product: never seen in training
        samples = [s for s in samples if s.label not in held]
        subsets = {"seen": set(labels) - held, "unseen": held}
    base = load_embedder(FROM_CATALOG_BASE if views is None else BASE)
    t = time.time()
    res = train_head(base, data / "catalog", None, work / f"{name}-s{seed}", cfg, samples=samples)
    seconds = time.time() - t
    head = load_embedder(res.spec)
    out = {"run": name, "seed": seed, "changes": changes, "views": views, "val": val_recall(head, data, subsets),
           "heldout_base": res.zero_shot, "heldout_best": res.best, "epochs": len(res.history),
           "query_zooms": list(res.query_zooms), "train_seconds": round(seconds, 1)}
    if subsets:
        out["val_base"] = val_recall(base, data, subsets)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="an imported GroceryStore dataset (python -m core import grocery)")
    ap.add_argument("--runs", default="base,catalog", help=f"comma list: base, {', '.join(runs())}")
    ap.add_argument("--seeds", default="0", help="comma list of training seeds")
    ap.add_argument("--work", default="/tmp/catalog-training", help="folder for the trained heads")
    ap.add_argument("--out", default=None, help="JSON lines file to append each result to")
    a = ap.parse_args()
    data, work = Path(a.data), Path(a.work)
    for name in a.runs.split(","):
        if name == "base":
            lines = [{"run": "base", "embedder": spec, "val": val_recall(load_embedder(spec), data)}
                     for spec in (FROM_CATALOG_BASE, BASE)]
        else:
            lines = [run(name, int(seed), data, work) for seed in a.seeds.split(",")]
        for line in lines:
            print(json.dumps(line), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
