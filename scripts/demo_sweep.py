"""How many training photos per product the real-photo demo needs (docs/demo_catalog.md): writes a scratch demo
with 8 training and 3 example photos per product (the examples drawn first, so they stay fixed), then for each k
trains the demo's head on the first k training photos of every product and prints the figures on the examples.

    PYTHONPATH=. VPS_CACHE=/tmp/demo-cache python scripts/demo_sweep.py --ks 2,4,6 --work /tmp/demo-sweep
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from collections import defaultdict
from pathlib import Path

from core.config.paths import DATASETS
from core.data.demo import QUERY_COLUMNS, write_demo_photos
from core.embedding import load_embedder
from core.evaluation.demo_figures import demo_figures
from core.metric.train import TrainConfig, train_head


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(DATASETS / "grocery"))
    p.add_argument("--work", default="/tmp/demo-sweep")
    p.add_argument("--ks", default="2,4,6")
    a = p.parse_args()
    work = Path(a.work)
    big = work / "big"
    if not (big / "queries-train.csv").is_file():
        write_demo_photos(a.dataset, big, n_train=8, n_examples=3)
    with open(big / "queries-train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    pretrained = load_embedder("efficientnet-lite0")
    for k in map(int, a.ks.split(",")):
        d = work / f"k{k}"
        if not d.exists():
            shutil.copytree(big, d)
        seen: dict[str, int] = defaultdict(int)
        sub = []
        for r in rows:  # the first k training photos of each product
            seen[r["product_id"]] += 1
            if seen[r["product_id"]] <= k:
                sub.append(r)
        with open(d / "queries-train.csv", "w", newline="") as f:
            w = csv.DictWriter(f, QUERY_COLUMNS)
            w.writeheader()
            w.writerows(sub)
        t = time.time()
        cfg = TrainConfig(hidden=256, out_dim=128, device="cpu", query_zooms="1,0.8,0.65")  # the demo's flags
        res = train_head(load_embedder("efficientnet-lite0:ms"), d / "catalog", d / "queries-train.csv", d / "head",
                         cfg)
        fig = demo_figures(d, pretrained, load_embedder(res.spec))
        print(f"k={k}: head trained in {time.time() - t:.0f}s, best epoch {res.best.get('epoch')}")
        print(fig.table(), flush=True)


if __name__ == "__main__":
    main()
