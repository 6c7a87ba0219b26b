"""Verbs of the data stage: ``sample``, ``scenes``, ``import``, ``folder-queries``."""

from __future__ import annotations

from core.cli.common import print_skipped

DATASET_NAMES = ("clothing", "grocery")


def args_sample(p) -> None:
    p.add_argument("--out", default="sample_catalog", help="folder to write (default sample_catalog)")


def run_sample(a) -> int:
    from core.data.sample import write_sample

    print(f"wrote {write_sample(a.out)}")
    return 0


def args_scenes(p) -> None:
    from core.data.scenes import DEV_SEED, N_SCENES, TEST_SEED

    p.add_argument("--catalog", default="sample_catalog", help="catalog whose products fill the scenes "
                   "(default sample_catalog)")
    p.add_argument("--out", required=True, help="folder to write (replaced): scenes/*.jpg and boxes.csv")
    p.add_argument("--seed", type=int, default=DEV_SEED,
                   help=f"which scenes: {DEV_SEED} = dev set (tune on it, default), {TEST_SEED} = test set")
    p.add_argument("--n", type=int, default=N_SCENES, help=f"number of scenes (default {N_SCENES})")


def run_scenes(a) -> int:
    from core.data.scenes import write_scenes

    if a.n < 1:
        raise ValueError("--n must be at least 1")
    print(f"wrote {write_scenes(a.catalog, a.out, seed=a.seed, n=a.n)}")
    return 0


def args_import(p) -> None:
    p.add_argument("name", choices=DATASET_NAMES, help="which public dataset")
    p.add_argument("path", nargs="?", help="the dataset folder (as downloaded)")
    p.add_argument("--out", default=None, help="output folder (default: the cache's imports/<name>)")
    p.add_argument("--download", action="store_true", help="fetch the public dataset first (needs internet)")
    p.add_argument("--views-in-catalog", action="store_true",
                   help="also index the train-split shop photos as images of their products (grocery)")


def run_import(a) -> int:
    from pathlib import Path

    from core.data.import_datasets import IMPORTERS, download

    if a.download:
        src = download(a.name)
    elif a.path:
        src = Path(a.path)
    else:
        raise ValueError("give the dataset PATH, or --download on a machine that is online")
    if not src.exists():
        raise ValueError(f"{src}: no such folder")
    kwargs = {"views_in_catalog": True} if a.views_in_catalog else {}
    if kwargs and a.name != "grocery":
        raise ValueError("--views-in-catalog applies to grocery (clothing's catalog is its photos already)")
    rep = IMPORTERS[a.name](src, a.out, **kwargs)
    print_skipped(rep.skipped)
    print(f"imported {rep.summary()} -> {rep.out}")
    return 0


def args_folder_queries(p) -> None:
    p.add_argument("tree", help="a folder of <category>/<image> files")
    p.add_argument("--out", required=True, help="the CSV to write")


def run_folder_queries(a) -> int:
    from core.data.query_sets import write_folder_queries

    out = write_folder_queries(a.tree, a.out)
    print(f"wrote {out} (read it with --root {a.tree})")
    return 0
