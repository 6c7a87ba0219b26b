"""Verbs of the metric-learning stage: ``train-metric`` and ``experiment``."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from core.cli.common import embedder_arg
from core.config.defaults import LOSSES, METRIC_BASE_SPEC, SPLITS


def args_train_metric(p) -> None:
    p.add_argument("--catalog", required=True, help="catalog folder (its images are training samples too)")
    p.add_argument("--views", default=None, help="folder with views.csv (image,product_id[,category]) or a CSV")
    p.add_argument("--from-catalog", action="store_true",
                   help="train on synthetic shop photos of every catalog picture (crops, copies, backgrounds, "
                        "light, blur, a hand or a price tag): no labelled photos needed; with --views, on both")
    p.add_argument("--shop-views", type=int, default=None,
                   help="synthetic shop photos per catalog picture (default with --from-catalog: 12)")
    p.add_argument("--shop-augs", default=None,
                   help="effects of the synthetic photos: all (default) or a list such as crop,pile,light")
    p.add_argument("--out", required=True, help="model folder to write (model.safetensors + config.json)")
    embedder_arg(p, METRIC_BASE_SPEC)
    p.add_argument("--loss", choices=LOSSES, default=None, help="default supcon")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 40, early stopping)")
    p.add_argument("--label", default=None, help="column that groups samples (default product_id)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per batch")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--out-dim", type=int, default=None, help="size of the trained vectors")
    p.add_argument("--hidden", type=int, default=None, help="width of the head's hidden layer (default 1024)")
    p.add_argument("--catalog-augs", type=int, default=None, help="augmented copies per catalog image (default 5)")
    p.add_argument("--view-augs", type=int, default=None, help="augmented copies per training view (default 2)")
    p.add_argument("--view-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="train on mirrored views too")
    p.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="embed each image with its mirror image too (default on)")
    p.add_argument("--holdout", type=float, default=None,
                   help="share of views held out for early stopping and the query zooms (default 0.1)")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="which views early stopping holds out: listed (default: the last listed of each product) "
                        "or appearance (per product, the look-alike groups least like its catalog image, as "
                        "photos of another store visit would be)")
    p.add_argument("--query-zooms", default=None,
                   help="whole-photo queries are embedded as the mean of these centre zooms: auto (default: "
                        "picked by a first head, trained with --zoom-split views held out), 1 (the photo as it "
                        "is) or a list such as 0.8,0.65,0.5")
    p.add_argument("--zoom-split", choices=SPLITS, default=None,
                   help="the held-out views auto chooses the zooms on (default appearance)")
    p.add_argument("--tune", type=int, default=None,
                   help="last backbone stages fine-tuned after the head, on cached activations "
                        "(default 0: frozen backbone; an efficientnet-lite*:ms base)")
    p.add_argument("--tune-epochs", type=int, default=None,
                   help="epochs of the head and tuned stages together, after the head alone (default 8)")
    p.add_argument("--tune-lr", type=float, default=None,
                   help="learning rate while the stages are tuned (default 1e-4)")
    p.add_argument("--device", default=None, help="auto (cuda when present, default), cpu or cuda")
    p.add_argument("--seed", type=int, default=None, help="random seed")


def args_experiment(p) -> None:
    p.add_argument("name", choices=["grocery", "clothing"], help="which dataset")
    p.add_argument("path", nargs="?", default=None, help="dataset folder (default: the shared copy)")
    p.add_argument("--out", default=None, help="work folder (default: the cache's experiments/<name>)")
    p.add_argument("--loss", choices=LOSSES, default=None, help="default supcon")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs")
    p.add_argument("--view-augs", type=int, default=None, help="augmented copies per training view (default 2)")
    embedder_arg(p, METRIC_BASE_SPEC)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run_train_metric(a) -> int:
    from core.embedding import load_embedder
    from core.metric.train import FROM_CATALOG, TrainConfig, train_head, zoom_key

    cfg = TrainConfig()
    for f in fields(TrainConfig):
        v = getattr(a, f.name, None)
        if v is not None:
            setattr(cfg, f.name, v)
    if a.from_catalog:
        for k, v in FROM_CATALOG.items():
            if getattr(a, k, None) is None:
                setattr(cfg, k, v)
    emb = load_embedder(a.model)
    res = train_head(emb, a.catalog, a.views, a.out, cfg, progress=True)
    b, z = res.best, res.zero_shot
    if cfg.tune and not res.tune:
        print(f"backbone frozen (fine-tuning stages needs an efficientnet-lite*:ms base, not {emb.spec})")
    if res.synthetic:
        print(f"held-out synthetic shop photos ({res.n_heldout}): recall@1 {z.get('recall@1', 0):.3f} with "
              f"{emb.spec} as it is -> {b.get('recall@1', 0):.3f} with the head (best epoch {b.get('epoch')}, "
              f"{res.seconds:.0f}s)")
        if not res.beats_base:
            print(f"the head does not beat {emb.spec} on held-out synthetic photos: keep searching with it "
                  f"(the head is saved in {a.out} all the same)")
            print(f"embedder spec: {emb.spec}")
            return 0
    elif res.n_heldout:
        print(f"held-out recall@1 {z.get('recall@1', 0):.3f} -> {b.get('recall@1', 0):.3f} "
              f"(recall@5 {z.get('recall@5', 0):.3f} -> {b.get('recall@5', 0):.3f}) on {res.n_heldout} views, "
              f"best epoch {b.get('epoch')}, {res.seconds:.0f}s")
    else:
        print(f"trained {len(res.history)} epochs in {res.seconds:.0f}s with no held-out views to stop early on "
              "(give --views with labelled photos for that); measure it with evaluate")
    if res.zoom_scores:
        print("query zooms (held-out recall@1): " + ", ".join(f"{k}: {v:.3f}" for k, v in res.zoom_scores.items())
              + f" -> {zoom_key(res.query_zooms)}")
    print(f"embedder spec: {res.spec}")
    print(f"re-index with: python -m core index --catalog {a.catalog} --out INDEX_DIR --model '{res.spec}'")
    return 0


def run_experiment(a) -> int:
    from core.metric.experiment import run_experiment as experiment

    report = experiment(a.name, a.path, out=a.out, loss=a.loss, epochs=a.epochs, view_augs=a.view_augs,
                            base=a.model)
    if a.json:
        print(json.dumps(report, indent=1))
    return 0
