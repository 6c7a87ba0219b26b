"""Which finds the products of labelled shop photos more often: the base embedder or a trained head. The check a
user can see after ``train-metric --from-catalog``, whose own held-out photos are synthetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.data.catalog import load_catalog
from core.data.query_sets import read_queries
from core.embedding import Embedder
from core.metric.features import embed_cached
from core.metric.train import recall_at


def recall_on_photos(embedder: Embedder, catalog_dir: str | Path, queries: str | Path, label: str = "product_id"
                     ) -> dict:
    """recall@1/5 of the labelled photos in ``queries`` (CSV: image, ``label``) against the catalog's pictures,
    with cached features (each photo as it is: no query zooms)."""
    cat = load_catalog(catalog_dir)
    ref, ref_err = embed_cached(embedder, [cat.path(r) for r in cat.rows])
    ref_lab = np.array([r.product_id if label == "product_id" else r.fields.get(label, "")
                        for i, r in enumerate(cat.rows) if i not in ref_err], dtype=object)
    rows, _ = read_queries(queries, label)
    q, q_err = embed_cached(embedder, [p for p, _ in rows])
    q_lab = np.array([lab for i, (_, lab) in enumerate(rows) if i not in q_err], dtype=object)
    out = recall_at(torch.from_numpy(q), q_lab, torch.from_numpy(ref), ref_lab)
    return {**out, "n": len(q_lab)}
