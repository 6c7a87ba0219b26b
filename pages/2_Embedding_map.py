"""Embedding map: the catalog's image vectors projected to 2D with UMAP; place the current query among its
neighbours."""

from __future__ import annotations

import streamlit as st

from core.embedding.decode import Crop
from core.explore.map_view import PlacedQuery, colour_columns, map_figure, map_table, nearest_row, place_query
from core.explore.projection import MAX_FIT, Projection
from ui.common import USER_ERRORS, Context, md, show_error, sidebar
from ui.explore import get_projection, umap_controls
from ui.query import crop_picker, embedded_query, photo_picker, state_text
from ui.state import app_state, sync_url


def size_note(proj: Projection) -> str:
    m = proj.manifest
    n = m["n_points"]
    how = (f"UMAP was fitted on a random {m['n_fit']:,} of the {n:,} images and the others were placed with "
           "`transform`." if m["n_fit"] < n else
           f"Catalogs above {MAX_FIT:,} images are fitted on a random {MAX_FIT:,}-image sample and the rest are "
           "placed with `transform`, which keeps the first projection to a few minutes.")
    return (f"{n:,} images · {'loaded from cache' if proj.reused else 'computed now'} "
            f"(first projection took {m['fit_seconds']} s) · {how}")


def placed_query(ctx: Context, proj: Projection) -> PlacedQuery | None:
    """The current query (the search page's, or another photo chosen here), placed on the map on request."""
    if not st.toggle("Place the query on the map", key="map_place",
                     help="The search page's query (same photo and crop); choosing another here changes it there."):
        return None
    left, right = st.columns([1, 2], gap="large")
    with right:
        k = st.slider("Neighbours to join", 1, 20, 5, key="map_k")
        st.caption("The star is placed with UMAP `transform`; the lines join it to its k nearest products in the "
                   "**full embedding space**. 2D distances only approximate the real ones, so a line may cross "
                   "the map to a point that looks far away.")
    with left:
        try:
            photo = photo_picker(ctx)
            crop = crop_picker(photo) if photo else None
            sync_url(app_state())
            text, weight = state_text(ctx)
            if photo is None and not text.strip():
                st.info("Choose a photo to place it on the map.")
                return None
            q = embedded_query(ctx, photo, crop or Crop(), text, weight)
            return place_query(ctx.index, proj, q.vector, k)
        except USER_ERRORS as e:
            show_error(e)
            return None


def main() -> None:
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
    st.caption(size_note(proj))
    rows = map_table(ctx.index, proj)
    colour = st.selectbox("Colour by", colour_columns(rows), key="map_colour")
    query = placed_query(ctx, proj)
    event = st.plotly_chart(map_figure(rows, colour or "category", query=query), on_select="rerun",
                            selection_mode="points", key="map_chart")
    st.caption("Hover shows title and category; click a point (or lasso several) to see the product's image.")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    row = nearest_row(rows, points[0].get("x", 0.0), points[0].get("y", 0.0)) if points else None
    if row is not None:
        a, b = st.columns([1, 3])
        a.image(row["image"], width=220)
        b.subheader(md(row.get("title") or row["product_id"]))
        b.json({k: v for k, v in row.items() if k not in ("x", "y")}, expanded=True)
    if query is not None:
        st.subheader("Nearest products in the full space")
        cols = st.columns(min(len(query.neighbours), 5) or 1)
        for i, (h, _) in enumerate(query.neighbours):
            cols[i % len(cols)].image(h.image, caption=f"#{h.rank} {h.product_id} · {h.score:.3f}", width=160)


main()
