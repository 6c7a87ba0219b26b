"""Search page: a shopper's photo (uploaded, from the camera, or an example) -> the most similar products, each
with its score split into its parts on one shared scale; thumbs feedback pins liked products and hides disliked
ones (with an undo). The page only renders; the work is done by ``core``."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.frame import Frame, first_paint
from ui.nav import use_app_navigation

use_app_navigation()
st.set_page_config(page_title="Search · Visual product search", layout="wide")  # the app's icon: ui.nav
FRAME = first_paint(":material/image_search: Visual product search",  # before the engine is even imported
                    wide_query=bool(st.session_state.get("find_products")))  # room to click the products found

from core.data.columns import ColumnTypes
from core.embedding.decode import Crop
from core.embedding.query import Query
from core.explore.projection import warm_up_in_background
from core.index import Hit
from core.search.explain import shared_range
from core.search.facets import Facet
from ui.caches import Context, get_searcher, wait_prepared
from ui.example_note import example_note
from ui.feedback import forget_votes_on_new_query, reset_votes, summary, undo, vote, votes
from ui.messages import USER_ERRORS, md, show_error
from ui.query import crop_picker, embedded_query, photo_picker, query_key, text_picker
from ui.regions import region_picker
from ui.scores import legend, score_bar
from ui.sidebar import describe, sidebar
from ui.state import MAX_K, Photo, app_state, bind, sync_url
from ui.thumbnails import thumbnail_bytes
from ui.view import (
    catalog_facets,
    catalog_types,
    facet_range,
    set_filter,
    valid_selection,
    view_results,
    view_search_ms,
    view_where,
)

COLUMNS = 5
WIDE_QUERY_COLUMNS = 3  # cards per row beside the wide query column of "Find each product"
SHORT_TEXT = 90  # characters of a long text field shown on a card


def search_settings(ctx: Context) -> list[str]:
    """Sidebar: number of results, minimum similarity, ranking and metadata filters, bound to the app state (so
    they survive page switches and travel in the URL) -> the search filters."""
    state = app_state()
    with st.sidebar:
        st.subheader("Results")
        bind("k", state.k, lambda v: isinstance(v, int) and 1 <= v <= MAX_K)
        state.k = st.slider("How many products", 1, MAX_K, key="k")
        bind("rerank", state.rank != "distance", lambda v: isinstance(v, bool))
        rerank = st.toggle("Re-rank by attribute filters", key="rerank",
                           help="Similarity plus agreement in colour and the catalog's attributes (see Why these "
                                "results); off: nearest neighbours by embedding distance only.")
        state.rank = (state.rank if state.rank != "distance" else "static") if rerank else "distance"
        if state.rank == "dynamic":
            st.caption("Weights predicted per query (the dynamic ranker chosen on Why these results).")
        bind("min_score", state.min_score, lambda v: isinstance(v, float) and 0.0 <= v <= 1.0)
        state.min_score = st.slider("Minimum similarity", 0.0, 1.0, step=0.01, key="min_score",
                                    help="Cosine similarity between the query and a product's best image; 0 shows "
                                         "all.")
        st.subheader("Filters")
        available = catalog_facets(ctx)
        view_where(available)  # the state's filters, checked against this catalog's
        for f in available:
            set_filter(f, facet_widget(f))
    return view_where(available)


def facet_widget(f: Facet) -> list[str] | tuple[float, float]:
    key = f"filter_{f.column}"
    kept = app_state().filters.get(f.column)
    if f.kind == "categorical":
        bind(key, kept or [], lambda v: valid_selection(f, v))
        return st.multiselect(f.column.capitalize(), f.options, key=key, placeholder="any")
    lo, hi, step = facet_range(f)
    bind(key, kept or (lo, hi), lambda v: valid_selection(f, v))
    return st.slider(f.column.capitalize(), lo, hi, step=step, key=key)


def result_card(hit: Hit, v: dict[str, int], dims: list[str], x_range: tuple[float, float],
                types: ColumnTypes) -> None:
    """One result: picture, the catalog's display fields (escaped; ids hidden, long text behind an expander),
    rank and similarity, the score and its parts as a bar on the shared scale, and thumbs that show their state."""
    thumb = thumbnail_bytes(hit.image)
    if thumb:
        st.image(thumb, width="stretch")
    card = types.card(hit.fields, hit.product_id)
    st.markdown(f"**{md(card.title)}**")
    details = [card.category] + [f"{k.replace('_', ' ')}: {val}" for k, val in card.details]
    st.caption(md(" · ".join(d for d in details if d)))
    if card.price:
        st.markdown(f"**{md(card.price)}**")
    for col, text in card.long_text:  # the start of it (a narrow card), the whole of it on hover
        short = text if len(text) <= SHORT_TEXT else text[:SHORT_TEXT].rsplit(" ", 1)[0] + "…"
        st.caption(f"{md(col.replace('_', ' ').capitalize())}: {md(short)}",
                   help=md(text) if short != text else None)
    mark = {1: " · liked, pinned", -1: " · disliked"}.get(v.get(hit.product_id, 0), "")
    st.caption(f"#{hit.rank} · {md(hit.product_id)} · similarity {hit.similarity:.3f}{mark}")
    parts = " + ".join(f"{md(d.replace('_', ' '))} {c:.2f}" for d, c in hit.contributions.items() if c)
    st.caption(f"score {hit.score:.2f} = {parts or 'similarity 0.00'}",
               help="What the list is ranked by: similarity plus agreement on the attribute filters, each times "
                    "its weight (see Why these results).")
    score_bar(hit, dims, x_range, key=f"bar_{hit.product_id}")
    up, down = st.columns(2)
    pressed = v.get(hit.product_id, 0)
    up.button("More", icon=":material/thumb_up:", key=f"up_{hit.product_id}", help="More like this: pin it on top",
              on_click=vote, args=(hit.product_id, 1), width="stretch", type="primary" if pressed > 0 else "secondary")
    down.button("Less", icon=":material/thumb_down:", key=f"down_{hit.product_id}",
                help="Less like this: hide it (undo above the results)", on_click=vote, args=(hit.product_id, -1),
                width="stretch", type="primary" if pressed < 0 else "secondary")


def hidden_row(ctx: Context, hidden: list[str]) -> None:
    """The disliked products, each with an undo."""
    if not hidden:
        return
    st.caption(f"Hidden ({len(hidden)}), less like these:")
    cols = st.columns(min(len(hidden), 4))
    for i, pid in enumerate(hidden):
        title = ctx.index.products.get(pid, {}).get("title") or pid
        cols[i % len(cols)].button(f"Undo: {md(title)}", key=f"undo_{pid}", on_click=undo, args=(pid,),
                                   icon=":material/undo:", help=f"Show {md(pid)} again")


def results(ctx: Context, q: Query, where: list[str], types: ColumnTypes,
            photo: Photo | None = None) -> DeltaGenerator | None:
    """Draw the results; when they are ranked by distance only while the attribute filters are prepared (a
    catalog's first search: results at once, the page re-ranks when the filters are ready), the place under the
    note where the preparation's bar goes, else None."""
    v = votes()
    searcher = get_searcher(ctx, wait=False)
    res, shown = view_results(ctx, searcher, q, where, wait=False)
    ms = view_search_ms()
    head, reset = st.columns([4, 1])
    fb = f" · {summary(v)}" if v else ""
    head.markdown(f"**{len(shown.hits)} product(s)** in {ms:.0f} ms{fb}"
                  + (f" · filters: {md(' & '.join(where))}" if where else ""))
    if v:
        reset.button("Reset feedback", on_click=reset_votes, key="reset_feedback")
    if res.no_close_match:  # below the catalog's calibrated closeness: nothing here is the same product
        st.warning("No close match: nothing in this catalog looks like this photo. These are the closest products "
                   "anyway, probably not the same item.")
    if res.preparing:
        st.info("Nearest products by similarity for now: this catalog's attribute filters (colour, learned heads) "
                "and its close-match threshold are being prepared, once. The results re-rank by themselves when "
                "they are ready.", icon=":material/hourglass_top:")
    bar = st.empty() if res.preparing else None
    example_note(ctx, photo, shown.hits, app_state().rank)  # a labelled example missed: what it is, and the fix
    hidden_row(ctx, shown.hidden)
    if shown.missing:
        st.caption("Liked, not among these results (filters or minimum similarity): "
                   + md(", ".join(shown.missing)))
    if not shown.hits:
        st.info("No product passes the filters and the minimum similarity; loosen them in the sidebar.")
        return bar
    dims = list(res.weights)
    x_range = shared_range(shown.hits)
    st.markdown(legend(dims))
    per_row = WIDE_QUERY_COLUMNS if st.session_state.get("find_products") else COLUMNS  # cards keep words whole
    for start in range(0, len(shown.hits), per_row):
        for col, hit in zip(st.columns(per_row), shown.hits[start:start + per_row]):
            with col, st.container(border=True):
                result_card(hit, v, dims, x_range, types)
    return bar


def main(frame: Frame) -> None:
    """The page below its first paint: the sidebar loads the model and the index (progress in ``frame.status``),
    the query column, then the results in place of the skeleton."""
    with frame.status:
        ctx = sidebar()
    if ctx is None:
        frame.shown()
        st.stop()
    try:
        types = catalog_types(ctx)
        where = search_settings(ctx)
    except USER_ERRORS as e:
        frame.shown()
        show_error(e)
        st.stop()
    frame.describe(f"{describe(ctx)} · give a photo of a product; the most similar catalog products come first.")
    left, right = frame.left, frame.right
    with left:
        try:
            photo = photo_picker(ctx)
            if photo:
                region_picker(ctx, photo)
            crop = crop_picker(photo, ctx) if photo else Crop()
        except USER_ERRORS as e:
            show_error(e)
            photo, crop = None, Crop()
        text, weight = text_picker(ctx)
        sync_url(app_state())
    with right:
        if photo is None and not text.strip():
            frame.shown()
            st.info("Choose an example photo, upload one or take one with the camera to search the catalog.")
            return
        try:
            q = embedded_query(ctx, photo, crop, text, weight)
            forget_votes_on_new_query(query_key(ctx, photo, crop, text, weight))
            frame.shown()
            preparing = results(ctx, q, where, types, photo)
        except USER_ERRORS as e:
            frame.shown()
            show_error(e)
            return
    if preparing is not None:  # the results are on screen; wait for the filters (a moving bar), then re-rank
        try:
            searcher = get_searcher(ctx, wait=False)
            wait_prepared(searcher, preparing)
            if not searcher.ready:  # the preparation failed: build here, so that its error is shown
                _ = searcher.ranker, searcher.calibration
        except USER_ERRORS as e:
            show_error(e)
            return
        if searcher.ready:
            st.rerun()
    warm_up_in_background()  # the map's UMAP compiles while the user reads the results


main(FRAME)
