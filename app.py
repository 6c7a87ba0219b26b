"""Search page: a shopper's photo (uploaded, from the camera, or an example) -> the most similar products.

Run with ``streamlit run app.py``. The page only renders; the work is done by ``core``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import numpy as np
import streamlit as st

from core.data.images import open_image
from core.embedding.decode import Crop, crop_preview
from core.embedding.query import Query, embed_query, example_queries
from core.index.product_index import Hit
from core.search.engine import SearchOptions
from core.search.facets import Facet, facets, where_clauses
from core.search.feedback import refine
from ui.common import USER_ERRORS, Context, get_searcher, show_error, sidebar, thumbnail_bytes

SOURCES = ("Example photo", "Upload a photo", "Camera")
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
COLUMNS = 5


def search_settings(ctx: Context) -> tuple[int, float, list[str], str]:
    """Sidebar: number of results, minimum similarity, ranking and metadata filters -> (k, min_score, where, rank)."""
    with st.sidebar:
        st.subheader("Results")
        k = st.slider("How many products", 1, 30, 10, key="k")
        rerank = st.toggle("Re-rank by attribute filters", True, key="rerank",
                           help="Similarity plus agreement in colour and the catalog's attributes (see Why these "
                                "results); off: nearest neighbours by embedding distance only.")
        min_score = st.slider("Minimum similarity", 0.0, 1.0, 0.0, 0.01, key="min_score",
                              help="Cosine similarity between the query and a product's best image; 0 shows all.")
        st.subheader("Filters")
        available = facets({p: ctx.index.products[p] for p in ctx.index.live_products()})
        selected: dict[str, list[str] | tuple[float, float]] = {}
        for f in available:
            selected[f.column] = facet_widget(f)
    return k, min_score, where_clauses(selected, available), ("static" if rerank else "distance")


def facet_widget(f: Facet) -> list[str] | tuple[float, float]:
    if f.kind == "categorical":
        return st.multiselect(f.column.capitalize(), f.options, key=f"filter_{f.column}",
                              placeholder="any")
    step = 1.0 if f.high - f.low > 20 else 0.1
    lo, hi = float(np.floor(f.low / step) * step), float(np.ceil(f.high / step) * step)
    return st.slider(f.column.capitalize(), lo, hi, (lo, hi), step, key=f"filter_{f.column}")


def query_image_bytes(ctx: Context) -> tuple[str, bytes] | None:
    """(name, bytes) of the photo the user chose, or None."""
    examples = example_queries(ctx.catalog_dir)
    sources = SOURCES if examples else SOURCES[1:]
    source = st.radio("Photo", sources, horizontal=True, key="source", label_visibility="collapsed")
    if source == "Example photo":
        pick = st.selectbox("Example shopper photo", examples, format_func=lambda p: p.name, key="example")
        return (pick.name, pick.read_bytes()) if pick else None
    if source == "Upload a photo":
        up = st.file_uploader("Photo of the product", type=IMAGE_TYPES, key="upload")
    else:
        up = st.camera_input("Take a photo of the product", key="camera")
    return (up.name, up.getvalue()) if up is not None else None


def crop_controls(name: str, data: bytes):
    """Decode the photo, let the user crop it, return the cropped image (and show a preview)."""
    img = open_image(data)
    digest = hashlib.sha1(data).hexdigest()[:12]
    with st.expander("Crop to the product", expanded=False):
        x = st.slider("Left / right edge (%)", 0, 100, (0, 100), key=f"crop_x_{digest}")
        y = st.slider("Top / bottom edge (%)", 0, 100, (0, 100), key=f"crop_y_{digest}")
        if x[0] >= x[1] or y[0] >= y[1]:
            st.warning("The crop is empty; searching the whole photo.")
            x, y = (0, 100), (0, 100)
    c = Crop(x[0] / 100, y[0] / 100, x[1] / 100, y[1] / 100)
    st.image(crop_preview(img, c), caption=f"{name} ({img.width}×{img.height})"
             + ("" if c.is_full else " — searching the outlined region"), width="stretch")
    return c, (digest, c)


def text_controls(ctx: Context) -> tuple[str, float]:
    if not ctx.embedder.supports_text:
        st.caption(f"Text search is off: **{ctx.spec}** is an image model with no text encoder, so words and "
                   "photos do not share its vector space. Pick an `open_clip` embedder in the sidebar to search "
                   "with text (\"green dress with stars\") or with a photo plus text.")
        return "", 0.5
    text = st.text_input("Describe the product", key="text", placeholder="green dress with stars")
    weight = st.slider("Weight of the text (with a photo)", 0.0, 1.0, 0.5, 0.05, key="text_weight")
    return text, weight


def vote(pid: str, value: int) -> None:
    votes = st.session_state.setdefault("votes", {})
    if votes.get(pid) == value:
        votes.pop(pid)
    else:
        votes[pid] = value


def reset_votes() -> None:
    st.session_state["votes"] = {}


def cached_query(ctx: Context, key: tuple, data: bytes | None, c: Crop | None, text: str, weight: float) -> Query:
    """The current query, embedded once per (embedder, photo, crop, text) through the one query path."""
    memo = st.session_state.get("query_memo")
    full_key = (ctx.spec, key, text.strip(), weight if text.strip() else None)
    if not memo or memo[0] != full_key:
        memo = (full_key, embed_query(ctx.embedder, data, crop=c, text=text, text_weight=weight))
        st.session_state["query_memo"] = memo
        if st.session_state.get("votes_for") != full_key:  # a new query: forget feedback on the old one
            st.session_state["votes"] = {}
            st.session_state["votes_for"] = full_key
    return memo[1]


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
    st.caption(f"{len(ctx.index)} products · embedder {ctx.spec} ({ctx.embedder.dim}-d) · "
               "give a photo of a product; the most similar catalog products come first.")
    left, right = st.columns([1, 3], gap="large")
    with left:
        try:
            chosen = query_image_bytes(ctx)
            c, key = crop_controls(*chosen) if chosen else (None, None)
        except USER_ERRORS as e:
            show_error(e)
            chosen, c, key = None, None, None
        data = chosen[1] if chosen and key else None
        text, weight = text_controls(ctx)
    with right:
        if data is None and not text.strip():
            st.info("Choose an example photo, upload one or take one with the camera to search the catalog.")
            return
        try:
            q = cached_query(ctx, key, data, c, text, weight)
            results(ctx, q, k, min_score, where, rank)
        except USER_ERRORS as e:
            show_error(e)


main()
