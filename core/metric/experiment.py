"""``python -m core experiment grocery|clothing``: import, train, re-index, evaluate before/after, one table.

Backbone features come from the feature cache (:mod:`core.metric.features`), so indexing and evaluating with
the base embedder and with the trained head cost one backbone pass per image in all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.config.paths import DATASETS, cache_dir, slug
from core.config.store import atomic_write
from core.data.catalog import load_catalog
from core.data.import_datasets import IMPORTERS
from core.data.query_sets import read_queries
from core.embedding import DEFAULT_SPEC, Embedder, load_embedder
from core.embedding.head import HeadEmbedder
from core.evaluation.evaluate import Evaluation, evaluate_vectors
from core.index import IndexBackend, backend_for
from core.metric.features import embed_cached
from core.metric.train import BASE_SPEC, TrainConfig, train_head

SETUPS = {
    # name: (label the queries are judged by, training config changes)
    "grocery": ("product_id", {}),
    "clothing": ("category", {"label": "category", "catalog_flip": False, "catalog_augs": 0, "tta_flip": False}),
}


def evaluate_cached(catalog_dir: Path, emb: Embedder, index_dir: Path, queries: dict[str, Path],
                    label: str) -> tuple[IndexBackend, dict[str, Evaluation]]:
    """Index the catalog with ``emb`` (from cached features) and evaluate every query CSV."""
    cat = load_catalog(catalog_dir)
    vecs, errors = embed_cached(emb, [cat.path(r) for r in cat.rows], progress=True)
    rows = [r for i, r in enumerate(cat.rows) if i not in errors]
    index = backend_for(index_dir).from_vectors(cat, emb, vecs, index_dir, rows=rows)
    out = {}
    for split, csv_path in queries.items():
        q, skipped = read_queries(csv_path, label)
        qv, qerr = embed_cached(emb, [p for p, _ in q], progress=True)
        out[split] = evaluate_vectors(index, [r for i, r in enumerate(q) if i not in qerr], qv, label=label,
                                      skipped=skipped)
    return index, out


def table(results: list[tuple[str, str, dict]], label: str) -> str:
    cols = ["recall@1", "recall@5", "recall@10", "map@10"] + (["precision@10"] if label != "product_id" else [])
    lines = ["| embedder | queries → catalog | " + " | ".join(cols) + " | n |", "|---|---|" + "---:|" * (len(cols) + 1)]
    for name, split, m in results:
        lines.append(f"| {name} | {split} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + f" | {m['n_queries']} |")
    return "\n".join(lines)


def run_experiment(name: str, path: str | Path | None = None, *, out: str | Path | None = None,
                   loss: str | None = None, epochs: int | None = None, view_augs: int | None = None,
                   base: str = BASE_SPEC) -> dict:
    label, changes = SETUPS[name]
    out = Path(out) if out else cache_dir() / "experiments" / name
    t0 = time.time()
    rep = IMPORTERS[name](Path(path) if path else DATASETS / name, out / "data")
    print(f"imported {rep.summary()} ({time.time() - t0:.0f}s)")
    data = out / "data"
    queries = {s: data / f"queries-{s}.csv" for s in rep.queries if s != "train"}
    default, base = load_embedder(DEFAULT_SPEC), load_embedder(base)
    cfg = TrainConfig(**changes)
    loss = cfg.loss = loss or cfg.loss
    if epochs:
        cfg.epochs = epochs
    if view_augs is not None:
        cfg.view_augs = view_augs
    t1 = time.time()
    views = data / "views" if (data / "views" / "views.csv").is_file() else None
    res = train_head(base, data / "catalog", views, out / "model", cfg, progress=True)
    train_s = time.time() - t1
    print(f"trained in {train_s:.0f}s (best epoch {res.best.get('epoch')}, held-out {res.best})")
    head = load_embedder(res.spec)
    embedders = [("zero-shot " + default.spec, default)]  # what the app searches with before training
    if base.spec != default.spec:
        embedders.append(("zero-shot " + base.spec, base))
    embedders.append((f"trained head ({loss}) on {base.spec}", head))
    if getattr(head, "tta_flip", False):
        no_tta = HeadEmbedder(base, out / "model", tta_flip=False)  # its own object: the cached head stays as is
        embedders.insert(-1, (f"trained head ({loss}) on {base.spec}, no test-time flip", no_tta))
    catalogs = {"products": data / "catalog"}
    if name == "grocery":  # the same products, with the train-split shop photos indexed as more views of each
        IMPORTERS[name](Path(path) if path else DATASETS / name, out / "data-views", views_in_catalog=True)
        catalogs["products + train photos"] = out / "data-views" / "catalog"
    rows = []
    for cat_name, cat_dir in catalogs.items():
        for title, emb in embedders:
            if cat_name != "products" and getattr(emb, "tta_flip", False):
                continue  # a flipped copy of every train photo is one more backbone pass: skipped on a CPU
            _, evs = evaluate_cached(cat_dir, emb, out / "indexes" / slug(f"{cat_name}-{title}"), queries, label)
            rows += [(title, f"{split} → {cat_name}", ev.metrics) for split, ev in evs.items()]
    md = table(rows, label)
    print(md)
    report = {"dataset": name, "label": label, "import": rep.summary(), "train_seconds": round(train_s, 1),
              "base": base.spec, "train_config": cfg.__dict__, "best": res.best, "zero_shot_holdout": res.zero_shot,
              "spec": res.spec,
              "results": [{"embedder": t, "queries": s, **m} for t, s, m in rows], "table": md,
              "seconds": round(time.time() - t0, 1)}
    atomic_write(out / "results.json", json.dumps(report, indent=1))
    atomic_write(out / "results.md", md + "\n")
    return report
