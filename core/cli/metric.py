"""Verbs of the metric-learning stage: ``train-metric`` and ``experiment``."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from core.cli.common import embedder_arg
from core.config.defaults import DEFAULT_SPEC, HOLDOUT_SPLITS, LOSSES, METRIC_BASE_SPEC


def args_train_metric(p) -> None:
    p.add_argument("--catalog", required=True, help="catalog folder (its images are training samples too)")
    p.add_argument("--views", default=None, help="folder with views.csv (image,product_id[,category]) or a CSV")
    p.add_argument("--from-catalog", action="store_true",
                   help="train on synthetic shop photos of every catalog picture (crops, copies, backgrounds, "
                        f"light, blur, a hand or a price tag): no labelled photos needed (base {DEFAULT_SPEC}, "
                        "identity head); with --views, on both (on grocery that lowered recall: "
                        "docs/metric_learning.md)")
    p.add_argument("--shop-views", type=int, default=None,
                   help="synthetic shop photos per catalog picture (default with --from-catalog: 12)")
    p.add_argument("--head-init", choices=("random", "identity"), default=None,
                   help="random (default) or identity: the head starts as the base and is kept only where it "
                        "beats it held out (default with --from-catalog alone)")
    p.add_argument("--check", default=None, metavar="CSV",
                   help="labelled shop photos (image,product_id) the --from-catalog head must beat the base on "
                        "to be recommended (default: a query CSV next to the catalog, if any)")
    p.add_argument("--shop-augs", default=None,
                   help="effects of the synthetic photos: all (default) or a list such as crop,pile,light")
    p.add_argument("--out", required=True, help="model folder to write (model.safetensors + config.json)")
    embedder_arg(p, None, f"{METRIC_BASE_SPEC}; with --from-catalog {DEFAULT_SPEC}, the pretrained search default")
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
    p.add_argument("--split", choices=HOLDOUT_SPLITS, default=None,
                   help="which views early stopping holds out: listed (default: the last listed of each product) "
                        "or appearance (per product, the look-alike groups least like its catalog image, as "
                        "photos of another store visit would be)")
    p.add_argument("--query-zooms", default=None,
                   help="whole-photo queries are embedded as the mean of these centre zooms: auto (default: "
                        "picked by a first head, trained with --zoom-split views held out), 1 (the photo as it "
                        "is) or a list such as 0.8,0.65,0.5")
    p.add_argument("--zoom-split", choices=HOLDOUT_SPLITS, default=None,
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
    from core.metric.train import FROM_CATALOG, FROM_CATALOG_BASE, TrainConfig, train_head, zoom_key

    cfg = TrainConfig()
    for f in fields(TrainConfig):
        v = getattr(a, f.name, None)
        if v is not None:
            setattr(cfg, f.name, v)
    alone = a.from_catalog and not a.views  # synthetic photos only: the pretrained base, an identity head
    if a.from_catalog:
        for k, v in (FROM_CATALOG if alone else {"shop_views": FROM_CATALOG["shop_views"]}).items():
            if getattr(a, k, None) is None:
                setattr(cfg, k, v)
    emb = load_embedder(a.model or (FROM_CATALOG_BASE if alone else METRIC_BASE_SPEC))
    res = train_head(emb, a.catalog, a.views, a.out, cfg, progress=True)
    b, z = res.best, res.zero_shot
    if cfg.tune and not res.tune:
        print(f"backbone frozen (fine-tuning stages needs an efficientnet-lite*:ms base, not {emb.spec})")
    if res.synthetic:
        return _from_catalog_verdict(a, emb, res)
    if res.n_heldout:
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


def _from_catalog_verdict(a, emb, res) -> int:
    """After training on synthetic photos: the head is recommended only if it beats the base on the held-out
    synthetic photos and on labelled shop photos (``--check``, or a query CSV next to the catalog); without
    labelled photos the base stays recommended (synthetic gains did not carry over to real photos on grocery)."""
    from core.evaluation.evaluate import query_files_near
    from core.metric.check import recall_on_photos

    b, z = res.best, res.zero_shot
    print(f"held-out synthetic shop photos ({res.n_heldout}): recall@1 {z.get('recall@1', 0):.3f} with "
          f"{emb.spec} as it is -> {b.get('recall@1', 0):.3f} with the head (best epoch {b.get('epoch')}, "
          f"{res.seconds:.0f}s)")
    check = a.check or next(iter(query_files_near(a.catalog)), None)
    verdict = res.beats_base
    if not res.beats_base:
        print(f"the head does not beat {emb.spec} on them: keep searching with {emb.spec}")
    elif check:
        from core.embedding import load_embedder

        before, after = recall_on_photos(emb, a.catalog, check), recall_on_photos(load_embedder(res.spec), a.catalog,
                                                                                   check)
        print(f"labelled photos {check} ({after['n']}): recall@1 {before['recall@1']:.3f} with {emb.spec} -> "
              f"{after['recall@1']:.3f} with the head")
        verdict = after["recall@1"] > before["recall@1"]
        if not verdict:
            print(f"the head does not beat {emb.spec} on real photos: keep searching with {emb.spec}")
    else:
        verdict = False
        print(f"no labelled shop photo to check the head on (--check CSV): keep searching with {emb.spec}; "
              "gains on synthetic photos alone did not carry over to real ones (docs/metric_learning.md)")
    if not verdict:
        print(f"the head is saved all the same: {res.spec}")
    spec = res.spec if verdict else emb.spec
    print(f"embedder spec: {spec}")
    print(f"re-index with: python -m core index --catalog {a.catalog} --out INDEX_DIR --model '{spec}'")
    return 0


def run_experiment(a) -> int:
    from core.metric.experiment import run_experiment as experiment

    report = experiment(a.name, a.path, out=a.out, loss=a.loss, epochs=a.epochs, view_augs=a.view_augs,
                            base=a.model)
    if a.json:
        print(json.dumps(report, indent=1))
    return 0
