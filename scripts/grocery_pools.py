"""Research driver for issue 6: frozen-feature read-outs and regularisers for the grocery head.

``extract``: one backbone pass per (image, view) fills the feature cache of every pooling variant
(``efficientnet-lite0[:gem|:ms|:msgem]``). ``select``: trains on the train split minus a *selection* set (the
last 30% of each product's train views in listed order) and reports recall@1/5 of the selection views against
the catalog images (it saturates near 0.95: same store visits). ``cluster``: the same with an
appearance-disjoint selection set (per product, the k-means cluster of its train photos least like the catalog
image); settings were chosen on this one. ``classes``: class-disjoint (not a usable proxy, see
docs/metric_learning.md). ``val``: trains with all train views and evaluates the val split once (as
``experiment grocery`` does). ``--set key=value`` changes TrainConfig fields (relative to the current
defaults); every result is appended to ``cache_dir()/research/results.jsonl``.
Run from the project root with ``VPS_CACHE`` pointing at a cache that holds an imported grocery dataset.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from core.config.paths import cache_dir
from core.data.query_sets import read_queries
from core.embedding import Embedder, load_embedder
from core.embedding.batch import embed_sources
from core.embedding.efficientnet import POOLS, pooled_maps
from core.metric.features import FeatureStore, view_options
from core.metric.train import TrainConfig, recall_at, train_head, training_samples

DATA = cache_dir() / "experiments" / "grocery" / "data"


class EveryPooling(Embedder):
    """One backbone pass of efficientnet-lite0, the vectors of every pooling (:data:`POOLS`) side by side."""

    def __init__(self):
        self.embs = {p: load_embedder("efficientnet-lite0" + ("" if p == "avg" else f":{p}")) for p in POOLS}
        base = self.embs["avg"]
        self.spec, self.image_size, self.preprocess = base.spec, base.image_size, base.preprocess
        self.dim = sum(e.dim for e in self.embs.values())

    @torch.inference_mode()
    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        out = pooled_maps(self.embs["avg"].net, batch.contiguous(memory_format=torch.channels_last))
        return np.concatenate([torch.nn.functional.normalize(out[p], dim=-1).numpy() for p in self.embs], 1)


def extract(view: str, paths: list[Path], digests: list[str], batch: int = 32) -> None:
    """Fill the feature cache of every pooling for ``view`` through the one batch embedder."""
    every = EveryPooling()
    stores = {p: FeatureStore(e, view) for p, e in every.embs.items()}
    todo = [i for i, d in enumerate(digests) if any(d not in s.data for s in stores.values())]
    vecs, errors = embed_sources(every, [paths[i] for i in todo], batch_size=batch, progress=True, desc=view,
                                 **view_options(every.embs["avg"], view, lambda j: digests[todo[j]]))
    ok = [i for j, i in enumerate(todo) if j not in errors]
    cuts = np.cumsum([e.dim for e in every.embs.values()])[:-1]
    for store, part in zip(stores.values(), np.split(vecs, cuts, axis=1)):
        for i, row in zip(ok, part):
            store.data[digests[i]] = row
        store.save()


def selection_split(samples, frac: float = 0.3) -> set[int]:
    by: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if not s.is_catalog:
            by[s.label].append(i)
    return {i for ids in by.values() for i in ids[-max(1, round(frac * len(ids))):]}


def cluster_split(samples) -> set[int]:
    """Appearance-disjoint: per product, k-means (k=3) of the zero-shot features of its train views; the
    cluster farthest from the catalog image (at most 60% of the views) is held out, a stand-in for photos
    from another store visit."""
    from sklearn.cluster import KMeans

    store = FeatureStore(load_embedder("efficientnet-lite0"), "orig")
    by: dict[str, list[int]] = defaultdict(list)
    cat = {}
    for i, s in enumerate(samples):
        (by[s.label].append(i) if not s.is_catalog else cat.__setitem__(s.label, store.data[s.digest]))
    out: set[int] = set()
    for label, ids in by.items():
        x = np.stack([store.data[samples[i].digest] for i in ids])
        km = KMeans(3, n_init=4, random_state=0).fit(x)
        for c in np.argsort(-(km.cluster_centers_ @ -cat[label])):  # farthest (least similar) first
            members = [i for i, k in zip(ids, km.labels_) if k == c]
            if len(members) <= 0.6 * len(ids):
                out.update(members)
                break
    return out


def class_split(samples) -> set[int]:
    """Class-disjoint: the train views of every other product (catalog images of all products stay)."""
    labels = sorted({s.label for s in samples})
    held = set(labels[1::2])
    return {i for i, s in enumerate(samples) if not s.is_catalog and s.label in held}


def features(emb, samples, ids, view="orig") -> torch.Tensor:
    store = FeatureStore(emb, view)
    return torch.from_numpy(np.stack([store.data[samples[i].digest] for i in ids]))


def run(spec: str, cfg: TrainConfig, mode: str, out: Path) -> dict:
    emb = load_embedder(spec)
    samples = training_samples(DATA / "catalog", DATA / "views")
    cat = [i for i, s in enumerate(samples) if s.is_catalog]
    lab = np.array([s.label for s in samples], dtype=object)
    if mode != "val":
        sel = {"select": selection_split, "cluster": cluster_split, "classes": class_split}[mode](samples)
        train = [s for i, s in enumerate(samples) if i not in sel]
        q, q_lab = sorted(sel), lab[sorted(sel)]
    else:
        train = samples
        rows, _ = read_queries(DATA / "queries-val.csv", "product_id")
        from core.data.catalog import file_digest
        from core.metric.train import Sample

        qs = [Sample(p, lb, False, file_digest(p)) for p, lb in rows]
        q_lab = np.array([s.label for s in qs], dtype=object)
    t0 = time.time()
    res = train_head(emb, DATA / "catalog", None, out, cfg, samples=train)
    secs = time.time() - t0
    head = load_embedder(res.spec)
    with torch.no_grad():
        def proj(x):
            return torch.nn.functional.normalize(head.project(x), dim=-1)

        ref = proj(features(emb, samples, cat))
        if mode != "val":
            qv = proj(features(emb, samples, q))
            m0 = recall_at(features(emb, samples, q), q_lab, features(emb, samples, cat), lab[cat])
            m = recall_at(qv, q_lab, ref, lab[cat])
            mf = {}
        else:
            qv = proj(features(emb, qs, range(len(qs))))
            qf = proj(features(emb, qs, range(len(qs)), "flip"))
            m0 = recall_at(features(emb, qs, range(len(qs))), q_lab, features(emb, samples, cat), lab[cat])
            m = recall_at(qv, q_lab, ref, lab[cat], ks=(1, 5, 10))
            ref_f = ref + proj(features(emb, samples, cat, "flip"))
            mf = recall_at(qv + qf, q_lab, ref_f, lab[cat], ks=(1, 5, 10))
    return {"spec": spec, "mode": mode, "cfg": {k: v for k, v in vars(cfg).items() if v != getattr(TrainConfig(), k)},
            "zero_shot": m0, "trained": m, "trained_tta": mf, "best": res.best, "loop_s": round(secs, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["extract", "select", "cluster", "classes", "val"])
    ap.add_argument("--spec", default="efficientnet-lite0")
    ap.add_argument("--set", nargs="*", default=[], help="TrainConfig changes, key=value")
    ap.add_argument("--view-augs", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    samples = training_samples(DATA / "catalog", DATA / "views")
    if a.what == "extract":
        from core.data.catalog import file_digest

        rows, _ = read_queries(DATA / "queries-val.csv", "product_id")
        val = [(p, file_digest(p)) for p, _ in rows]
        cat = [(s.path, s.digest) for s in samples if s.is_catalog]
        views = [(s.path, s.digest) for s in samples if not s.is_catalog]
        jobs = [("orig", cat + views + val), ("flip", cat + val)] + [(f"aug{k}", cat) for k in range(5)]
        jobs += [(f"aug{k}", views) for k in range(a.view_augs)]
        for view, items in jobs:
            extract(view, [p for p, _ in items], [d for _, d in items])
        return
    cfg = TrainConfig()
    for kv in a.set:
        k, v = kv.split("=")
        setattr(cfg, k, type(getattr(cfg, k))(v) if not isinstance(getattr(cfg, k), bool) else v == "1")
    out = cache_dir() / "research" / f"{a.what}-{a.spec.replace(':', '-')}-{'-'.join(a.set) or 'default'}"
    r = run(a.spec, cfg, a.what, out)
    print(json.dumps(r))
    with open(cache_dir() / "research" / "results.jsonl", "a") as f:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
