"""Verb ``demo``: (re)build the real-photo demo catalog ``demo_catalog/`` from GroceryStoreDataset's train split.

Stages: the photos (:mod:`core.data.demo`), the head (``train-metric`` with the pinned flags below, on the catalog
and ``queries-train.csv``; sealed with what produced it), the order of the examples and the figures
(:mod:`core.evaluation.demo_figures`). ``--head-only`` retrains the head from the bundled photos alone.
"""

from __future__ import annotations

#: train-metric's flags for the demo's head, every setting the CLI takes pinned, so that a change of the trainer's
#: defaults does not change the shipped head (its test rebuilds it and compares digests)
HEAD_FLAGS = ["--model", "efficientnet-lite0:ms", "--label", "product_id", "--loss", "supcon", "--epochs", "40",
              "--batch-size", "128", "--lr", "0.001", "--out-dim", "128", "--hidden", "256",
              "--catalog-augs", "5", "--view-augs", "2", "--no-view-flip", "--tta-flip", "--holdout", "0.1",
              "--split", "listed", "--query-zooms", "1,0.8,0.65", "--shop-views", "0", "--tune", "0", "--device", "cpu",
              "--seed", "0"]


def args_demo(p) -> None:
    from core.config.paths import DATASETS, DEMO_ROOT

    p.add_argument("dataset", nargs="?", default=None,
                   help=f"GroceryStoreDataset folder (default {DATASETS / 'grocery'}); not read with --head-only")
    p.add_argument("--out", default=str(DEMO_ROOT), help=f"demo folder to write (default {DEMO_ROOT})")
    p.add_argument("--head-only", action="store_true",
                   help="only retrain the head (OUT/head) from OUT's catalog and queries-train.csv")
    p.add_argument("--figures", action="store_true",
                   help="only print the figures on the example photos (pretrained, classifier, trained head)")


def run_demo(a) -> int:
    from pathlib import Path

    from core.config.paths import DATASETS

    out = Path(a.out).expanduser()
    if a.figures:
        print(figures(out).table())
        return 0
    if not a.head_only:
        from core.data.demo import write_demo_photos

        rep = write_demo_photos(Path(a.dataset).expanduser() if a.dataset else DATASETS / "grocery", out)
        print(f"wrote {rep.summary()} -> {out}")
    elif not (out / "queries-train.csv").is_file():
        raise ValueError(f"{out}: no demo photos (queries-train.csv) to train on; run python -m core demo first")
    print(f"head: {train_head(out)}")
    prepare_vectors(out)
    if not a.head_only:
        from core.data.demo import write_example_order
        from core.evaluation.demo_figures import first_example_order

        fig = figures(out)
        write_example_order(out, first_example_order(fig))
        print(fig.table())
    return 0


def train_head(out):
    """Train ``out/head`` with :data:`HEAD_FLAGS` (through ``train-metric`` itself) and seal its config; returns
    the weights' sha256."""
    import shutil

    from core.cli import main
    from core.data.demo import seal_head

    head = out / "head"
    if head.exists():
        shutil.rmtree(head)
    argv = ["train-metric", "--catalog", str(out / "catalog"), "--views", str(out / "queries-train.csv"),
            "--out", str(head), *HEAD_FLAGS]
    if main(argv) != 0:
        raise ValueError("train-metric failed (see above)")
    return seal_head(out, HEAD_FLAGS)


def prepare_vectors(out) -> None:
    """The catalog's vectors for both networks (pretrained, its trained head), written beside it
    (:mod:`core.index.prepared`): the app builds the demo's indexes without embedding a picture; and its labelled
    photos' (:mod:`core.explore.prepared_photos`): the classifier page embeds none either."""
    from core.config.defaults import DEFAULT_SPEC
    from core.data.catalog import load_catalog
    from core.embedding import load_embedder
    from core.embedding.available import shipped_head_spec
    from core.explore.prepared_classifier import write_prepared_classifiers
    from core.explore.prepared_photos import write_prepared_photos
    from core.index.prepared import write_prepared

    cat = load_catalog(out / "catalog")
    for spec in (DEFAULT_SPEC, shipped_head_spec(out / "catalog")):
        if spec:
            emb = load_embedder(spec)
            print(f"prepared vectors -> {write_prepared(cat, emb, progress=True)}")
            print(f"prepared photo vectors -> {write_prepared_photos(cat.root, emb, progress=True)}")
    emb = load_embedder(DEFAULT_SPEC)  # the page's classifier learns the pretrained network's vectors
    print(f"prepared classifiers -> {write_prepared_classifiers(cat.root, emb, progress=True)}")


def figures(out):
    """The demo's figures on its example photos (:func:`core.evaluation.demo_figures.demo_figures`)."""
    from core.config.defaults import DEFAULT_SPEC
    from core.embedding import load_embedder
    from core.embedding.available import shipped_head_spec
    from core.evaluation.demo_figures import demo_figures

    spec = shipped_head_spec(out / "catalog")
    if spec is None:
        raise ValueError(f"{out}: no trained head (head/config.json); run python -m core demo --head-only")
    return demo_figures(out, load_embedder(DEFAULT_SPEC), load_embedder(spec), progress=True)
