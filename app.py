"""Search page: a shopper's photo (uploaded, from the camera, or an example) -> the most similar products.

Run with ``streamlit run app.py``. The page only renders; the work is done by ``core``.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import streamlit as st

from core.embedding.decode import Crop
from core.embedding.query import Query
from core.index.product_index import Hit
from core.search.engine import SearchOptions
from core.search.facets import Facet, facets, where_clauses
from core.search.feedback import refine
from ui.common import USER_ERRORS, Context, get_searcher, md, show_error, sidebar, thumbnail_bytes
from ui.query import crop_picker, embedded_query, photo_picker, query_key, text_picker
from ui.state import app_state, keep, sync_url

COLUMNS = 5


def search_settings(ctx: Context) -> tuple[int, float, list[str], str]:
    """Sidebar: number of results, minimum similarity, ranking and metadata filters -> (k, min_score, where, rank).
    Each is kept across page switches."""
    with st.sidebar:
        st.subheader("Results")
        keep("k", 10, lambda v: isinstance(v, int) and 1 <= v <= 30)
        k = st.slider("How many products", 1, 30, key="k")
        keep("rerank", True, lambda v: isinstance(v, bool))
        rerank = st.toggle("Re-rank by attribute filters", key="rerank",
                           help="Similarity plus agreement in colour and the catalog's attributes (see Why these "
                                "results); off: nearest neighbours by embedding distance only.")
        keep("min_score", 0.0, lambda v: isinstance(v, float) and 0.0 <= v <= 1.0)
        min_score = st.slider("Minimum similarity", 0.0, 1.0, step=0.01, key="min_score",
                              help="Cosine similarity between the query and a product's best image; 0 shows all.")
        st.subheader("Filters")
        available = facets({p: ctx.index.products[p] for p in ctx.index.live_products()})
        selected: dict[str, list[str] | tuple[float, float]] = {}
        for f in available:
            selected[f.column] = facet_widget(f)
    return k, min_score, where_clauses(selected, available), ("static" if rerank else "distance")


def facet_widget(f: Facet) -> list[str] | tuple[float, float]:
    key = f"filter_{f.column}"
    if f.kind == "categorical":
        keep(key, [], lambda v: isinstance(v, list) and set(v) <= set(f.options))
        return st.multiselect(f.column.capitalize(), f.options, key=key, placeholder="any")
    step = 1.0 if f.high - f.low > 20 else 0.1
    lo, hi = float(np.floor(f.low / step) * step), float(np.ceil(f.high / step) * step)
    keep(key, (lo, hi), lambda v: isinstance(v, tuple) and len(v) == 2 and lo <= v[0] <= v[1] <= hi)
    return st.slider(f.column.capitalize(), lo, hi, step=step, key=key)


def vote(pid: str, value: int) -> None:
    votes = st.session_state.setdefault("votes", {})
    if votes.get(pid) == value:
        votes.pop(pid)
    else:
        votes[pid] = value


def reset_votes() -> None:
    st.session_state["votes"] = {}


def forget_votes_on_new_query(key: tuple) -> None:
    """Feedback is about one query: a new query starts without votes."""
    if st.session_state.get("votes_for") != key:
        st.session_state["votes"] = {}
        st.session_state["votes_for"] = key


def result_card(hit: Hit, votes: dict[str, int]) -> None:
    thumb = thumbnail_bytes(hit.image)
    if thumb:
        st.image(thumb, width="stretch")
    f = hit.fields
    st.markdown(f"**{f.get('title') or hit.product_id}**")
    details = [f.get("category", "")]
    details += [f"{k}: {v}" for k, v in f.items() if k not in ("title", "category", "price") and v]
    st.caption(" · ".join(d for d in details if d))
    if f.get("price"):
        st.markdown(f"**{f['price']}**")
    mark = {1: " · liked", -1: " · disliked"}.get(votes.get(hit.product_id, 0), "")
    st.caption(f"#{hit.rank} · {hit.product_id} · similarity {hit.similarity:.3f}{mark}")
    if len(hit.contributions) > 1:  # why it ranks here: weight x score per dimension, summing to the score
        st.caption(f"score {hit.score:.2f} = " + " + ".join(f"{d.replace('_', ' ')} {c:.2f}"
                                                          for d, c in hit.contributions.items() if c),
                   help="Ranked by similarity plus agreement on the attribute filters; see Why these results.")
    up, down = st.columns(2)
    up.button("More", icon=":material/thumb_up:", key=f"up_{hit.product_id}", help="More like this",
              on_click=vote, args=(hit.product_id, 1), width="stretch")
    down.button("Less", icon=":material/thumb_down:", key=f"down_{hit.product_id}", help="Less like this",
                on_click=vote, args=(hit.product_id, -1), width="stretch")


def results(ctx: Context, q: Query, k: int, min_score: float, where: list[str], rank: str) -> None:
    votes: dict[str, int] = st.session_state.setdefault("votes", {})
    searcher = get_searcher(ctx)
    t0 = time.perf_counter()
    q = replace(q, vector=refine(ctx.index, q.vector, votes)) if votes else q
    hits = searcher.search(q, SearchOptions.make(k=k, where=where, min_similarity=min_score, rank=rank)).hits
    ms = (time.perf_counter() - t0) * 1000
    head, reset = st.columns([4, 1])
    liked, disliked = sum(v > 0 for v in votes.values()), sum(v < 0 for v in votes.values())
    fb = f" · refined by feedback ({liked} liked, {disliked} disliked)" if votes else ""
    head.markdown(f"**{len(hits)} product(s)** in {ms:.0f} ms{fb}" + (f" · filters: `{' & '.join(where)}`"
                                                                       if where else ""))
    if votes:
        reset.button("Reset feedback", on_click=reset_votes, key="reset_feedback")
    if not hits:
        st.info("No product passes the filters and the minimum similarity; loosen them in the sidebar.")
        return
    for start in range(0, len(hits), COLUMNS):
        for col, hit in zip(st.columns(COLUMNS), hits[start:start + COLUMNS]):
            with col, st.container(border=True):
                result_card(hit, votes)


def main() -> None:
    st.set_page_config(page_title="Visual product search", page_icon="🔎", layout="wide")
    ctx = sidebar()
    if ctx is None:
        st.stop()
    try:
        k, min_score, where, rank = search_settings(ctx)
    except USER_ERRORS as e:
        show_error(e)
        st.stop()
    st.title(":material/image_search: Visual product search")
    st.caption(f"{len(ctx.index)} products · embedder {md(ctx.spec)} ({ctx.embedder.dim}-d) · "
               "give a photo of a product; the most similar catalog products come first.")
    left, right = st.columns([1, 3], gap="large")
    with left:
        try:
            photo = photo_picker(ctx)
            crop = crop_picker(photo) if photo else Crop()
        except USER_ERRORS as e:
            show_error(e)
            photo, crop = None, Crop()
        text, weight = text_picker(ctx)
        sync_url(app_state())
    with right:
        if photo is None and not text.strip():
            st.info("Choose an example photo, upload one or take one with the camera to search the catalog.")
            return
        try:
            q = embedded_query(ctx, photo, crop, text, weight)
            forget_votes_on_new_query(query_key(ctx, photo, crop, text, weight))
            results(ctx, q, k, min_score, where, rank)
        except USER_ERRORS as e:
            show_error(e)


main()
