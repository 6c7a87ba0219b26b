"""``python -m core <verb>``: every pipeline stage is also a command, listed in one table.

A verb's module (``core.cli.<stage>``) is imported only when that verb is called, and those modules import the
engine inside their ``run_*`` functions, so ``python -m core --help``, every ``VERB --help`` and ``sample``
load no torch. Bad input exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: verb -> (module that defines ``args_<verb>(parser)`` and ``run_<verb>(args) -> int``, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "sample": ("core.cli.data", "regenerate the procedural sample catalog, byte for byte"),
    "scenes": ("core.cli.data", "write a scene set: photos of several catalog products with their true boxes"),
    "demo": ("core.cli.demo", "rebuild the real-photo demo catalog (grocery shop photos) and its trained head"),
    "import": ("core.cli.data", "import a public dataset (grocery, clothing) as a catalog + query CSVs"),
    "folder-queries": ("core.cli.data", "write a queries CSV (image,category) for a <category>/<image> tree"),
    "index": ("core.cli.index", "embed a catalog (progress bar) and build its index"),
    "info": ("core.cli.index", "what an index holds, and the search settings chosen for it with their recall"),
    "prepare": ("core.cli.index", "embed a shipped catalog ahead (prepared/<spec>.npz): its index builds without "
                                  "embedding while catalog and weights match"),
    "add": ("core.cli.index", "index catalog rows that are not in the index yet (no rebuild)"),
    "remove": ("core.cli.index", "hide products from search at once (tombstones)"),
    "compact": ("core.cli.index", "drop removed products and rebuild Annoy from the stored vectors"),
    "add-product": ("core.cli.index", "add a product (images + fields) to a CSV catalog and its index"),
    "remove-product": ("core.cli.index", "remove products from a CSV catalog and hide them in its index"),
    "search": ("core.cli.search", "search an index with image files (--explain: weights and contributions)"),
    "attributes": ("core.cli.search", "train/show the attribute filters of an index (heads at chance dropped)"),
    "rank-train": ("core.cli.search", "train the dynamic ranker (per-query weights) on labelled queries"),
    "map": ("core.cli.explore", "2D UMAP map of an index (cached) as an HTML plot or a CSV"),
    "disagreements": ("core.cli.explore", "classifier trained on labelled photos versus nearest neighbour (and a "
                                         "trained head) on held-out photos"),
    "evaluate": ("core.cli.evaluation", "recall@1/5/10 and mAP@10 (precision@10 for labels) on labelled queries"),
    "evaluate-ranking": ("core.cli.evaluation", "distance vs static vs dynamic ranking on the same queries"),
    "evaluate-regions": ("core.cli.evaluation", "find and search the products of scene photos: box recall, "
                         "mean IoU, top-1/top-5 per found box, time per photo"),
    "evaluate-no-match": ("core.cli.evaluation", "how often the \"no close match\" notice flags foreign photos "
                          "and spares the catalog's own"),
    "bench": ("benchmarks.cli", "benchmark embedding, query latency, ANN libraries and UMAP"),
    "train-metric": ("core.cli.metric", "train a projection head so distance means same product"),
    "experiment": ("core.cli.metric", "import a dataset, train, re-index, evaluate before/after; one table"),
}


def _name(verb: str) -> str:
    return verb.replace("-", "_")


def verb_functions(verb: str):
    """``(args_fn, run_fn)`` of a verb (imports its CLI module, not the engine)."""
    mod = importlib.import_module(VERBS[verb][0])
    return getattr(mod, f"args_{_name(verb)}"), getattr(mod, f"run_{_name(verb)}")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``verb`` (only its module is imported); every verb is listed."""
    p = argparse.ArgumentParser(prog="python -m core", description="Visual product search engine: "
                                "each stage of the pipeline is a verb; VERB --help tells its options.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (_, help_) in VERBS.items():
        s = sub.add_parser(name, help=help_, description=help_)
        if name == verb:
            args_fn, run_fn = verb_functions(name)
            args_fn(s)
            s.set_defaults(fn=run_fn)
    return p


def main(argv: list[str] | None = None) -> int:
    from core.cli.common import USER_ERRORS, one_line
    from core.config.settings import problems

    argv = list(sys.argv[1:] if argv is None else argv)
    verb = argv[0] if argv and argv[0] in VERBS else None
    args = build_parser(verb).parse_args(argv)
    if bad := problems():  # a VPS_* variable with a value it does not accept: one line each, nothing run
        for line in bad:
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        return args.fn(args)
    except USER_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
