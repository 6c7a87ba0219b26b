"""What the map pages draw: the table of mapped images, the scatter, a query with its full-space neighbours,
and the classifier's decision regions with the disagreement cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.text import html_text
from core.explore.disagreements import Case, DisagreementReport, Regions, decision_regions
from core.explore.projection import Projection
from core.index import Hit, IndexBackend


def map_table(index: IndexBackend, proj: Projection) -> list[dict]:
    """One row per mapped image: coordinates, product id, image and the product's fields."""
    rows = []
    for (x, y), i in zip(proj.coords.tolist(), proj.vector_ids.tolist()):
        pid = index.item_pid[i]
        rows.append({"x": round(x, 5), "y": round(y, 5), "product_id": pid, "image": index.image_path(i),
                     **index.products.get(pid, {})})
    return rows


#: a map's axes: UMAP's two directions have no units, so no titles or numbers (only closeness means something)
AXIS = {"showticklabels": False, "zeroline": False, "title_text": None}


def colour_columns(rows: list[dict]) -> list[str]:
    """Columns the map can be coloured by: ``category`` first, then every other field of the products."""
    if not rows:
        return []
    cols = ["category", *[c for c in rows[0] if c not in ("x", "y", "image", "category")]]
    return [c for c in dict.fromkeys(cols) if c in rows[0]]


@dataclass
class PlacedQuery:
    xy: tuple[float, float]
    neighbours: list[tuple[Hit, tuple[float, float]]]  # full-space top-k hits and their map positions


def place_query(index: IndexBackend, proj: Projection, vector: np.ndarray, k: int = 5) -> PlacedQuery:
    """Position a query with UMAP ``transform`` and find its k nearest products in the full space."""
    xy = proj.transform(vector)[0]
    pos = {index.image_path(i): (float(a), float(b)) for (a, b), i in zip(proj.coords, proj.vector_ids)}
    hits = index.search(vector, k)[0]
    return PlacedQuery((float(xy[0]), float(xy[1])), [(h, pos[h.image]) for h in hits if h.image in pos])


def esc(value: object) -> str:
    """Catalog text for a plotly label or hover: shown as typed, never as markup (:func:`core.data.text.html_text`)."""
    return html_text(value)


def hover_text(row: dict) -> str:
    """A mapped image's hover text: title, category and product id, escaped, one per line."""
    parts = [row.get("title") or "", row.get("category") or "", row["product_id"]]
    return "<br>".join(esc(p) for p in dict.fromkeys(parts) if p)


MAX_GROUPS = 12  # colours a person can tell apart on one map; rarer values share one grey "other" group


def point_groups(rows: list[dict], colour: str, max_groups: int = MAX_GROUPS) -> dict[str, list[int]]:
    """Row indices by their value of ``colour`` (the map's legend entries), in first-seen order; beyond
    ``max_groups`` values, the most frequent ``max_groups - 1`` keep their own entry and the rest are one last
    entry, ``other (N values)``."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(str(r.get(colour, "")), []).append(i)
    if len(groups) <= max_groups:
        return groups
    kept = set(sorted(groups, key=lambda g: -len(groups[g]))[:max_groups - 1])
    rest = sorted(i for g, idx in groups.items() if g not in kept for i in idx)
    return {g: idx for g, idx in groups.items() if g in kept} | {f"{other_label(len(groups) - len(kept))}": rest}


def other_label(n: int) -> str:
    """The legend entry of the rarer values grouped together."""
    return f"other ({n} values)"


def map_figure(rows: list[dict], colour: str = "category", title: str = "", query: PlacedQuery | None = None,
               refined: PlacedQuery | None = None):
    """Plotly scatter (WebGL) coloured by a column; hover shows title and category (escaped); optional query star
    (and the query refined by feedback)."""
    import plotly.graph_objects as go

    colour = colour if rows and colour in rows[0] else "product_id"
    fig = go.Figure()
    for name, idx in point_groups(rows, colour).items():
        fig.add_trace(go.Scattergl(
            x=[rows[i]["x"] for i in idx], y=[rows[i]["y"] for i in idx], mode="markers", name=esc(name),
            customdata=idx, text=[hover_text(rows[i]) for i in idx], hovertemplate="%{text}<extra></extra>",
            marker={"size": 6, "opacity": 0.8}))
    for q, name, symbol in ((query, "your photo", "star"),
                            (refined, "your photo refined by your thumbs", "star-diamond")):
        if q is None:
            continue
        for _h, (x, y) in q.neighbours:
            fig.add_trace(go.Scatter(x=[q.xy[0], x], y=[q.xy[1], y], mode="lines", showlegend=False,
                                     line={"color": "black" if q is query else "#d62728", "width": 1},
                                     hoverinfo="skip"))
        fig.add_trace(go.Scatter(
            x=[x for _, (x, _) in q.neighbours], y=[y for _, (_, y) in q.neighbours], mode="markers",
            name=f"{name}: closest products", marker={"size": 11, "symbol": "circle-open", "color": "black"},
            text=[f"#{h.rank} {esc(h.product_id)} (similarity {h.score:.3f})" for h, _ in q.neighbours],
            hoverinfo="text"))
        fig.add_trace(go.Scatter(x=[q.xy[0]], y=[q.xy[1]], mode="markers", name=name, hoverinfo="name",
                                 marker={"size": 18, "symbol": symbol,
                                         "color": "black" if q is query else "#d62728"}))
    fig.update_layout(title=esc(title) if title else None, legend_title_text=esc(colour), height=650)
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
    return fig


def regions_figure(coords: np.ndarray, regions: Regions, cases: list[Case], case_xy: np.ndarray,
                   title: str = ""):
    """Decision regions (shaded), catalog points, and the disagreement cases placed with ``transform``."""
    import plotly.colors as pc
    import plotly.graph_objects as go

    palette = pc.qualitative.Plotly + pc.qualitative.Set3 + pc.qualitative.Pastel
    n = len(regions.classes)
    colours = [palette[i % len(palette)] for i in range(n)]
    if n > 1:
        scale = [[i / (n - 1), c] for i, c in enumerate(colours)]
    else:
        scale = [[0, colours[0]], [1, colours[0]]]
    names = np.array([esc(c) for c in regions.classes], dtype=object)[regions.z]
    fig = go.Figure(go.Heatmap(x=regions.xs, y=regions.ys, z=regions.z, colorscale=scale, zmin=0,
                               zmax=max(n - 1, 1), opacity=0.35, showscale=False, customdata=names,
                               hovertemplate="classifier says %{customdata}<extra></extra>"))
    for c, colour in zip(regions.classes, colours):  # the regions' legend: one swatch per class
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=esc(c), legendgroup="regions",
                                 legendgrouptitle_text="classifier's region", showlegend=True,
                                 marker={"size": 12, "symbol": "square", "color": colour, "opacity": 0.6}))
    fig.add_trace(go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers", name="catalog images",
                               marker={"size": 4, "color": "rgba(60,60,60,0.5)"}, hoverinfo="skip"))
    styles = {"classifier_only": ("classifier right, neighbour wrong", "star", "green"),
              "neighbour_only": ("neighbour right, classifier wrong", "x", "red")}
    for kind, (name, symbol, colour) in styles.items():
        sel = [i for i, c in enumerate(cases) if c.kind == kind]
        if not sel:
            continue
        fig.add_trace(go.Scatter(
            x=case_xy[sel, 0], y=case_xy[sel, 1], mode="markers", name=name,
            marker={"size": 13, "symbol": symbol, "color": colour, "line": {"width": 1, "color": "black"}},
            text=[f"true {esc(cases[i].label)}; classifier {esc(cases[i].clf_label)} ({cases[i].clf_prob:.2f}); "
                  f"neighbour {esc(cases[i].nn_label)} (distance {cases[i].nn_distance:.3f})" for i in sel],
            hoverinfo="text"))
    fig.update_layout(title=esc(title) if title else None, height=650)
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
    return fig


def disagreements_figure(index: IndexBackend, proj: Projection, rep: DisagreementReport, title: str = ""):
    """The classifier's decision regions on the map of ``index``, with the report's queries placed on it."""
    regions = decision_regions(rep.classifier, proj.coords, index.vectors[proj.vector_ids])
    return regions_figure(proj.coords, regions, rep.cases, proj.transform(rep.query_vectors), title)
