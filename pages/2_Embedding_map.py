"""Embedding map: the catalog's image vectors projected to 2D with UMAP; hover a point to see its picture, place
the current query (and the query refined by feedback) among its neighbours."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.frame import Frame, first_paint
from ui.nav import use_app_navigation

use_app_navigation()
st.set_page_config(page_title="Embedding map", layout="wide")
FRAME = first_paint("Embedding map", cards=0)  # before the engine is imported

from core.embedding.decode import Crop
from core.explore.map_view import PlacedQuery, colour_columns, map_table, place_query
from core.explore.projection import Projection, UmapParams
from ui.auth import can_edit
from ui.caches import Context
from ui.explore import get_projection, umap_controls
from ui.feedback import refined_vector
from ui.hover_map import hover_map
from ui.messages import USER_ERRORS, md, show_error
from ui.query import crop_picker, embedded_query, photo_picker, query_key, state_text
from ui.sidebar import describe, sidebar
from ui.state import app_state, sync_url
from ui.thumbnails import thumbnail_bytes
from ui.words import MAP_HELP, column_name


def size_note(proj: Projection) -> str:
    """How the map was made; the note on sampling only where the catalog was sampled."""
    m = proj.manifest
    n = m["n_points"]
    how = (f" · the map was laid out from a random {m['n_fit']:,} of the {n:,} images and the others were placed "
           "on it." if m["n_fit"] < n else "")
    return (f"{n:,} images · {'loaded from cache' if proj.reused else 'computed now'} "
            f"(first drawing took {m['fit_seconds']} s){how}")


def placed_query(ctx: Context, proj: Projection) -> tuple[PlacedQuery | None, PlacedQuery | None, DeltaGenerator]:
    """The current query (the search page's, or another photo chosen here) placed on the map on request, and the
    same query refined by the thumbs given on the search page (None when there are none); and where the map goes:
    beside the query's column (a tall photo never pushes the map down), or the whole width."""
    if not st.toggle("Place the query on the map", key="map_place",
                     help="The search page's query (same photo and crop); choosing another here changes it there."):
        return None, None, st.container()
    left, right = st.columns([1, 3], gap="medium")
    with left:
        k = st.slider("Neighbours to join", 1, 20, 5, key="map_k")
        st.caption("The star is your photo; the lines join it to the products the search finds closest. The map "
                   "flattens many dimensions into two, so a line may cross the map to a point that looks far "
                   "away. A red diamond is the photo refined by your thumbs on the search page.",
                   help="The star is placed with UMAP `transform`; its neighbours are its k nearest products in the "
                        "full embedding space (cosine similarity).")
        try:
            photo = photo_picker(ctx)
            crop = (crop_picker(photo, ctx) if photo else None) or Crop()
            sync_url(app_state())
            text, weight = state_text(ctx)
            if photo is None and not text.strip():
                st.info("Choose a photo to place it on the map.")
                return None, None, right
            q = embedded_query(ctx, photo, crop, text, weight)
            refined = refined_vector(ctx.index, q.vector, query_key(ctx, photo, crop, text, weight))
            return (place_query(ctx.index, proj, q.vector, k),
                    place_query(ctx.index, proj, refined, k) if refined is not None else None, right)
        except USER_ERRORS as e:
            show_error(e)
            return None, None, right


def map_params() -> UmapParams:
    """UMAP settings: adjustable locally (or signed in); fixed to the defaults on a shared server, where every
    new setting is minutes of CPU."""
    if can_edit():
        return umap_controls("map")
    st.caption("Map settings are fixed on this shared server.",
               help="UMAP with n_neighbors 15, min_dist 0.1 and the cosine metric.")
    return UmapParams()


def main(frame: Frame) -> None:
    with frame.status:
        ctx = sidebar()
    if ctx is None:
        st.stop()
    frame.describe(describe(ctx))
    st.caption("Each point is one catalog picture; pictures the network finds alike land close together. Hover a "
               "point to see its picture; click it for its details below. The map is drawn once per catalog and "
               "settings, then kept.", help=MAP_HELP)
    params = map_params()
    try:
        proj = get_projection(ctx, params)
    except USER_ERRORS as e:
        show_error(e)
        st.stop()
    st.caption(size_note(proj))
    rows = map_table(ctx.index, proj)
    colour = st.selectbox("Colour by", colour_columns(rows), key="map_colour", format_func=column_name)
    query, refined, area = placed_query(ctx, proj)
    try:
        with area:
            clicked = hover_map(rows, colour or "category", query=query, refined=refined, key="map_chart")
    except USER_ERRORS as e:
        show_error(e)
        st.stop()
    row = rows[clicked["i"]] if clicked and 0 <= clicked.get("i", -1) < len(rows) else None
    if row is not None:
        a, b = st.columns([1, 3])
        if thumb := thumbnail_bytes(row["image"]):
            a.image(thumb, width=220)
        b.subheader(md(row.get("title") or row["product_id"]))
        b.json({k: v for k, v in row.items() if k not in ("x", "y")}, expanded=True)
    for q, title in ((query, "Nearest products in the full space"),
                     (refined, "Nearest to the query refined by feedback")):
        if q is None:
            continue
        st.subheader(title)
        cols = st.columns(min(len(q.neighbours), 5) or 1)
        for i, (h, _) in enumerate(q.neighbours):
            if thumb := thumbnail_bytes(h.image):
                cols[i % len(cols)].image(thumb, caption=f"#{h.rank} {md(h.product_id)} · {h.score:.3f}",
                                          width=160)


main(FRAME)
