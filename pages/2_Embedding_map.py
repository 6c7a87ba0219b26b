"""Embedding map: the catalog's image vectors projected to 2D with UMAP; place a query among its neighbours."""

from __future__ import annotations

import streamlit as st

from core.embedding.query import embed_query
from core.explore.map_view import map_figure, map_table, nearest_row, place_query
from core.explore.projection import MAX_FIT
from ui.common import USER_ERRORS, show_error, sidebar
from ui.explore import get_projection, umap_controls

st.set_page_config(page_title="Embedding map", layout="wide")
st.title("Embedding map")
ctx = sidebar()
if ctx is None:
    st.stop()

st.caption("Each point is one catalog image, placed by UMAP so that images with similar embeddings land close "
           "together. The projection is computed once per index and settings and cached on disk.")
params = umap_controls("map")
try:
    proj = get_projection(ctx, params)
except USER_ERRORS as e:
    show_error(e)
    st.stop()

m = proj.manifest
n = m["n_points"]
size_note = (f"UMAP was fitted on a random {m['n_fit']:,} of the {n:,} images and the others were placed with "
             "`transform`." if m["n_fit"] < n else
             f"Catalogs above {MAX_FIT:,} images are fitted on a random {MAX_FIT:,}-image sample and the rest are "
             "placed with `transform`, which keeps the first projection to a few minutes.")
st.caption(f"{n:,} images · {'loaded from cache' if proj.reused else 'computed now'} "
           f"(first projection took {m['fit_seconds']} s) · {size_note}")

rows = map_table(ctx.index, proj)
columns = ["category", *[c for c in rows[0] if c not in ("x", "y", "image", "category")]] if rows else []
columns = [c for c in dict.fromkeys(columns) if c in rows[0]] if rows else []
colour = st.selectbox("Colour by", columns, key="map_colour")

with st.expander("Place a query on the map", expanded=False):
    up = st.file_uploader("Query photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="map_query")
    k = st.slider("Neighbours to join", 1, 20, 5, key="map_k")
    st.caption("The star is placed with UMAP `transform`; the lines join it to its k nearest products in the "
               "**full embedding space**. 2D distances only approximate the real ones, so a line may cross "
               "the map to a point that looks far away.")
query = None
if up is not None:
    try:
        query = place_query(ctx.index, proj, embed_query(ctx.embedder, up.getvalue()).vector, k)
    except USER_ERRORS as e:
        show_error(e)

fig = map_figure(rows, colour or "category", query=query)
event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="map_chart")
st.caption("Hover shows title and category; click a point (or lasso several) to see the product's image.")

points = (event or {}).get("selection", {}).get("points", []) if event else []
if points:
    p = points[0]
    row = nearest_row(rows, p.get("x", 0.0), p.get("y", 0.0))
    if row is not None:
        a, b = st.columns([1, 3])
        a.image(row["image"], width=220)
        b.subheader(row.get("title") or row["product_id"])
        b.json({k: v for k, v in row.items() if k not in ("x", "y")}, expanded=True)
if query is not None:
    st.subheader("Nearest products in the full space")
    cols = st.columns(min(len(query.neighbours), 5) or 1)
    for i, (h, _) in enumerate(query.neighbours):
        cols[i % len(cols)].image(h.image, caption=f"#{h.rank} {h.product_id} · {h.score:.3f}", width=160)
