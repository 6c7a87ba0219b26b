"""Bench section ``nomatch``: the "no close match" notice's rates with the default embedder, against its goals.

Grocery (GroceryStoreDataset) val photos against clothing (clothing-dataset-small) validation photos, both ways,
and the drawn sample against both; each case is ``python -m core evaluate-no-match`` (its calibration holds the
measured catalog photos out). Needs the datasets in ``config.paths.DATASETS``; without them the table says so.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from benchmarks.common import Table
from core.config.paths import DATASETS, DEMO_CATALOG, SAMPLE_CATALOG

GOAL = 0.90
N_SAMPLE_PHOTOS = 120
SAMPLE_PHOTO_SEED = 2024  # not the seed of the sample's queries.csv (11): new photos


def sample_photos(out: Path, n: int = N_SAMPLE_PHOTOS, seed: int = SAMPLE_PHOTO_SEED) -> Path:
    """``n`` new shopper photos of sample products (as the sample's queries are made), with ``photos.csv``."""
    from core.data.sample import products, shopper_photo

    out.mkdir(parents=True, exist_ok=True)
    rng, prods, rows = random.Random(seed), products(), []
    for j in range(n):
        p = prods[rng.randrange(len(prods))]
        img, _ = shopper_photo(p, rng)
        img.save(out / f"s{j:03d}.jpg", quality=90)
        rows.append({"image": f"s{j:03d}.jpg", "product_id": p["product_id"]})
    with open(out / "photos.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["image", "product_id"])
        w.writeheader()
        w.writerows(rows)
    return out / "photos.csv"


def bench_nomatch(quick: bool, workdir: Path) -> Table:
    from core.data.catalog import load_catalog
    from core.data.import_datasets import import_clothing, import_grocery
    from core.embedding import DEFAULT_SPEC, load_embedder
    from core.evaluation.nomatch_eval import evaluate_no_match
    from core.index import IndexBackend, build_index, open_index

    t = Table(f'"No close match" notice ({DEFAULT_SPEC}; goals: both rates >= {GOAL:.2f})',
              ["catalog", "its photos (not to flag)", "foreign photos (to flag)", "calibration's foreign pictures",
               "threshold", "catalog photos not flagged", "foreign photos flagged", "goals met"])
    if not (DATASETS / "grocery").is_dir() or not (DATASETS / "clothing").is_dir():
        t.notes.append(f"skipped: the grocery and clothing datasets are not in {DATASETS}")
        return t
    emb = load_embedder(DEFAULT_SPEC)
    gro, clo = import_grocery(DATASETS / "grocery", workdir / "grocery").out, \
        import_clothing(DATASETS / "clothing", workdir / "clothing").out
    g_val, c_val = gro / "queries-val.csv", clo / "queries-validation.csv"

    def index(name: str, folder: Path) -> IndexBackend:  # reused from an earlier run in the same --workdir
        out, catalog = workdir / f"nomatch-{name}", load_catalog(folder)
        try:
            idx = open_index(out, emb)
            if idx.manifest.get("catalog_fingerprint") == catalog.fingerprint():
                return idx
        except (OSError, ValueError, RuntimeError):
            pass
        return build_index(catalog, emb, out, progress=True)[0]

    cases = [("grocery (81 products)", index("grocery", gro / "catalog"), g_val, [c_val], ())]
    if not quick:
        clothing = index("clothing", clo / "catalog")
        cases.append(("clothing (3068 photos)", clothing, c_val, [g_val], ()))
        if (DEMO_CATALOG / "catalog.csv").is_file():
            cases.append(("clothing (3068 photos)", clothing, c_val, [g_val], ("demo",)))
    if (DEMO_CATALOG / "catalog.csv").is_file():
        cases.append(("demo (real-photo grocery)", index("demo", DEMO_CATALOG), g_val, [c_val], ()))
    sample, photos = index("sample", SAMPLE_CATALOG), sample_photos(workdir / "sample-photos")
    cases.append(("sample (240 drawn products)", sample, photos, [g_val, c_val], ()))
    if (DEMO_CATALOG / "catalog.csv").is_file():
        cases.append(("sample (240 drawn products)", sample, photos, [g_val, c_val], ("demo",)))
    for name, idx, photos, foreign, leave_out in cases:
        r = evaluate_no_match(idx, emb, photos, foreign, leave_out=leave_out, progress=True)
        negs = ", ".join(f"{g.removeprefix('catalog:')} {n}" for g, n in r.negatives.items())
        t.add(name, f"{photos.parent.name}/{photos.name} ({r.n_catalog})",
              " + ".join(f"{f.parent.name}/{f.name}" for f in foreign) + f" ({r.n_foreign})",
              negs + (f" ({', '.join(leave_out)} left out)" if leave_out else ""), r.threshold,
              r.catalog_not_flagged, r.foreign_flagged,
              "yes" if min(r.catalog_not_flagged, r.foreign_flagged) >= GOAL else "no")
    t.notes += [
        "Each row is python -m core evaluate-no-match --index INDEX --photos PHOTOS --foreign FOREIGN "
        "[--leave-out demo]: the index's calibration is redone with PHOTOS held out of its known queries (grocery: "
        "its train-split shop photos; clothing: augmented catalog photos, as its only labelled set is the measured "
        "validation split; sample: its queries.csv), then each photo is searched as a shopper's is.",
        "Closeness = best similarity to the catalog's pictures or its known shopper photos; the threshold lies "
        "between the 97% quantile of the foreign pictures (generated pictures, other bundled catalogs: the drawn "
        "sample, the real-photo grocery demo, never a catalog that shares the index's products) and the 3% "
        "quantile of the known queries (core/search/calibration.py). No val/validation photo is a calibration "
        "negative.",
        "The demo catalog is grocery shop photos (train split): as a foreign picture of the clothing and sample "
        "catalogs it shares the domain of the measured foreign photos (grocery val), hence the rows with it left out.",
        "sample-photos: 120 new shopper photos of sample products (seed 2024; the sample's own queries are seed 11). "
        "demo: its catalog pictures and train shop photos are known; grocery val photos (of the same products, never "
        "in the demo) are its photos.",
    ]
    return t
