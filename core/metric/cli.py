"""CLI verbs ``train-metric`` and ``experiment`` (registered through ``core.cli.PLUGIN_MODULES``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields


def cmd_train(a) -> int:
    from ..embedders import load_embedder
    from .train import TrainConfig, train_head

    cfg = TrainConfig()
    for f in fields(TrainConfig):
        v = getattr(a, f.name, None)
        if v is not None:
            setattr(cfg, f.name, v)
    emb = load_embedder(a.model)
    res = train_head(emb, a.catalog, a.views, a.out, cfg, progress=True)
    b, z = res.best, res.zero_shot
    print(f"held-out recall@1 {z.get('recall@1', 0):.3f} -> {b.get('recall@1', 0):.3f} "
          f"(recall@5 {z.get('recall@5', 0):.3f} -> {b.get('recall@5', 0):.3f}), best epoch {b.get('epoch')}, "
          f"{res.seconds:.0f}s")
    print(f"embedder spec: {res.spec}")
    print(f"re-index with: python -m core index --catalog {a.catalog} --out INDEX_DIR --model '{res.spec}'")
    return 0


def cmd_experiment(a) -> int:
    from .experiment import run_experiment

    report = run_experiment(a.name, a.path, out=a.out, loss=a.loss, epochs=a.epochs, view_augs=a.view_augs,
                            base=a.model)
    if a.json:
        print(json.dumps(report, indent=1))
    return 0


def register_cli(sub) -> None:
    from .losses import LOSSES
    from .train import BASE_SPEC

    s = sub.add_parser("train-metric", help="train a projection head on frozen features (metric learning)")
    s.add_argument("--catalog", required=True, help="catalog folder (its images are training samples too)")
    s.add_argument("--views", default=None, help="folder with views.csv (image,product_id[,category]) or a CSV")
    s.add_argument("--out", required=True, help="model folder to write (model.safetensors + config.json)")
    s.add_argument("--model", default=BASE_SPEC, help=f"base embedder spec (frozen; default {BASE_SPEC})")
    s.add_argument("--loss", choices=LOSSES, default=None, help="default supcon")
    s.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 40, early stopping)")
    s.add_argument("--label", default=None, help="column that groups samples (default product_id)")
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--lr", type=float, default=None)
    s.add_argument("--out-dim", type=int, default=None)
    s.add_argument("--catalog-augs", type=int, default=None, help="augmented copies per catalog image (default 5)")
    s.add_argument("--view-augs", type=int, default=None, help="augmented copies per training view (default 2)")
    s.add_argument("--view-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="train on mirrored views too")
    s.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="embed each image with its mirror image too (default on)")
    s.add_argument("--holdout", type=float, default=None, help="share of views held out for early stopping")
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("experiment", help="import a dataset, train, re-index, evaluate before/after; print a table")
    s.add_argument("name", choices=["grocery", "clothing"])
    s.add_argument("path", nargs="?", default=None, help="dataset folder (default: the shared copy)")
    s.add_argument("--out", default=None, help="work folder (default cache_dir()/experiments/<name>)")
    s.add_argument("--loss", choices=LOSSES, default=None, help="default supcon")
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--view-augs", type=int, default=None, help="augmented copies per training view (default 2)")
    s.add_argument("--model", default=BASE_SPEC, help=f"base embedder spec (frozen; default {BASE_SPEC})")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_experiment)

