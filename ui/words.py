"""The words a person reads for the engine's identifiers (metrics, rankings, relevance labels, map settings,
embedders); the technical term goes behind a help icon."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:  # pandas (about 0.3 s) is imported by the page that draws a table, not by every page
    import pandas as pd

#: metric key -> (column a person reads, help naming the metric)
METRICS: dict[str, tuple[str, str]] = {
    "recall@1": ("Right product first", "recall@1: the share of test photos whose product is the first result."),
    "recall@5": ("Right product in the first 5", "recall@5: the share of test photos whose product is among the "
                                                 "first 5 results."),
    "recall@10": ("Right product in the first 10", "recall@10: the share of test photos whose product is among "
                                                   "the first 10 results."),
    "map@10": ("Ranking quality (first 10)", "mAP@10, mean average precision: 1.0 when every matching product "
                                             "comes before every other one in the first 10 results."),
    "precision@10": ("Matches among the first 10", "precision@10: the share of the first 10 results that match "
                                                   "the photo's label."),
    "n_queries": ("Photos tested", "n_queries: the number of labelled photos searched."),
}

#: ranking key -> what it does, in words
RANKINGS = {"static": "Similarity and attributes (the app's search)",
            "dynamic": "Similarity and attributes, weights chosen per photo",
            "distance": "Similarity only"}
RANKING_HELP = ("static: similarity re-ranked by agreement on the attributes (colour, category…) with fixed weights; "
                "dynamic: the same with weights predicted for each photo; distance: nearest neighbours by embedding "
                "similarity only.")

#: relevance label -> when a result counts as right
LABELS = {"product_id": "the same product", "category": "the same category"}

#: UMAP settings: (label, help)
MAP_SETTINGS = {
    "nn": ("Neighbourhood size", "UMAP's n_neighbors: larger keeps the overall layout; smaller shows finer local "
                                 "groups."),
    "md": ("Spacing of points", "UMAP's min_dist: how tightly points may pack together."),
    "metric": ("Distance measure", "UMAP's metric. Search uses cosine similarity, so cosine matches it best."),
}
MAP_HELP = ("Made with UMAP, which places images so that those the network finds alike land close together. The "
            "two directions have no meaning of their own (no units); only closeness does.")

#: a pretrained network's spec -> its short name
NETWORKS = {"efficientnet-lite0": "EfficientNet-Lite0", "efficientnet-lite0:ms": "EfficientNet-Lite0, several scales",
            "efficientnet-lite1": "EfficientNet-Lite1", "efficientnet-lite2": "EfficientNet-Lite2, larger"}


def column_name(column: str) -> str:
    """A catalog column as a person reads it: ``product_id`` is "product", underscores are spaces."""
    return "product" if column == "product_id" else column.replace("_", " ")


def ranking_name(key: str) -> str:
    return RANKINGS.get(key, key)


def label_name(key: str) -> str:
    return LABELS.get(key, key)


def embedder_name(spec: str, shipped: str | None = None) -> str:
    """An embedder spec in words: the pretrained networks by what they are, the head the catalog ships as
    "Trained for this catalog", another trained head by its folder's name; never a path on this server."""
    if spec in NETWORKS:
        return f"Pretrained network ({NETWORKS[spec]})"
    if "+head:" in spec:
        base, folder = spec.split("+head:", 1)
        d = Path(folder)
        if shipped and spec == shipped:
            return f"Trained for this catalog (head: {d.parent.name if d.name == 'head' else d.name})"
        return f"Trained head: {d.name} (on {NETWORKS.get(base, base)})"
    if spec.startswith("open_clip:"):
        parts = spec.split(":")
        return f"Image-and-text network (open_clip {parts[1] if len(parts) > 1 else ''})".replace(" )", ")")
    return spec


def metrics_table(metrics: dict[str, dict[str, float]], shipped: str | None = None
                  ) -> tuple[pd.DataFrame, dict]:
    """Each embedder's metrics as a table a person reads (rows named by :func:`embedder_name`, columns by
    :data:`METRICS`) and its column config, the metric's own name behind each column's help icon."""
    import pandas as pd

    names: dict[str, str] = {}
    for spec in metrics:
        name = embedder_name(spec, shipped)
        names[spec] = name if name not in names.values() else f"{name} #{len(names) + 1}"  # two heads of one name
    table = pd.DataFrame({names[s]: m for s, m in metrics.items()}).T
    config: dict = {"_index": st.column_config.TextColumn("Network", width="large")}
    for key in table.columns:
        name, help_ = METRICS.get(key, (key, None))
        config[name] = st.column_config.NumberColumn(name, help=help_, format="%d" if key == "n_queries" else "%.3f")
    return table.rename(columns={k: METRICS[k][0] for k in table.columns if k in METRICS}), config
