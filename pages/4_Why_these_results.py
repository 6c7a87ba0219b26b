"""Why these results: the search page's query ranked by similarity + attribute filters, with static sliders or
dynamic weights, and each result's score split into its contributions."""

from __future__ import annotations

import streamlit as st

from ui.frame import Frame, first_paint
from ui.nav import use_app_navigation

use_app_navigation()
st.set_page_config(page_title="Why these results", layout="wide")
FRAME = first_paint("Why these results", cards=0)  # before the engine is imported

import plotly.graph_objects as go

from core.data.text import plain
from core.embedding.decode import Crop
from core.explore.map_view import esc
from core.search.engine import Searcher, SearchResult
from core.search.explain import score_parts, scorer_rows, shared_range, top_attributes
from core.search.feedback import Arranged
from core.search.ranking import SIMILARITY, RankingError, load_presets, save_preset
from ui.auth import can_edit
from ui.caches import Context, get_searcher
from ui.feedback import forget_votes_on_new_query, summary, votes
from ui.messages import USER_ERRORS, md, show_error
from ui.query import crop_picker, embedded_query, photo_picker, query_key, state_text
from ui.sidebar import describe, sidebar
from ui.state import RANKS, app_state, bind, sync_url
from ui.view import catalog_facets, view_results, view_where
from ui.words import RANKING_HELP, column_name, ranking_name


def static_weights(searcher: Searcher) -> dict[str, float]:
    """Preset and per-dimension sliders; a preset can be saved."""
    presets = load_presets()
    name = st.selectbox("Preset", ["default", *presets], key="why_preset")
    base = searcher.default_weights if name == "default" else presets[name]
    cols = st.columns(len(searcher.dims))
    weights = {d: c.slider(md(column_name(d)), 0.0, 3.0, float(base.get(d, 0.0)), 0.05, key=f"w_{name}_{d}",
                           help=md(f"The weight of {d} in the score."))
               for d, c in zip(searcher.dims, cols)}
    if not can_edit():  # presets are saved on the server, for everyone
        return weights
    new = st.text_input("Save these weights as preset", key="why_preset_name")
    if st.button("Save preset", key="why_preset_save") and new:
        try:
            save_preset(new, weights)
            st.success(f"saved preset {md(new)}")
        except RankingError as e:
            show_error(e)
    return weights


def dynamic_ready(ctx: Context, searcher: Searcher) -> bool:
    """Whether a dynamic ranker is trained; if not, say so and offer to train one on the catalog's queries."""
    try:
        _ = searcher.net  # a clear message when no dynamic ranker is trained yet
        return True
    except RankingError as e:
        st.warning(str(e))
    queries_csv = ctx.catalog_dir / "queries.csv"
    if queries_csv.is_file() and can_edit() and st.button(f"Train on {queries_csv.name}", key="why_train"):
        from core.evaluation.rank_eval import train_dynamic

        bar = st.progress(0.0, text="Embedding training queries…")
        train_dynamic(ctx.index, ctx.embedder, queries_csv, progress=lambda i, n: bar.progress(i / max(n, 1)))
        bar.empty()
        st.rerun()
    return False


def explanation(res: SearchResult) -> None:
    """The weights used and the query's predicted attributes."""
    st.caption("Weights used: " + ", ".join(f"{md(column_name(d))} {w:.2f}" for d, w in res.weights.items()))
    if res.query_attributes:
        st.subheader("The query's predicted attributes")
        st.dataframe([{"Attribute": plain(column_name(d)),
                       **{f"#{i + 1}": plain(f"{v} ({p:.0%})") for i, (v, p) in enumerate(top)}}
                      for d, top in top_attributes(res.query_attributes).items()], hide_index=True)


def result_rows(res: SearchResult, shown: Arranged) -> None:
    """Each result as the search page shows it (liked pinned first, disliked hidden) with its contributions;
    every chart on one x-axis range, so bars compare across results."""
    v = votes()
    if shown.pinned or shown.hidden:
        st.caption(f"As on the search page, {summary(v)}: liked products pinned first, disliked ones hidden.")
    if shown.missing:
        st.caption("Liked, not among these results (filters or minimum similarity): " + md(", ".join(shown.missing)))
    lo, hi = shared_range(shown.hits)
    for h in shown.hits:
        a, b = st.columns([1, 3])
        a.image(h.image, width="stretch")
        mark = " · liked, pinned" if v.get(h.product_id, 0) > 0 else ""
        a.caption(f"#{h.rank} {md(h.product_id)} · {md(h.fields.get('title', ''))}{mark}")
        parts = score_parts(h, res.weights)
        fig = go.Figure(go.Bar(x=[p.contribution for p in parts], y=[esc(p.dimension.replace("_", " ")) for p in parts],
                               orientation="h", text=[p.label for p in parts], hoverinfo="x+y",
                               textposition="outside", cliponaxis=False, textfont={"size": 13},
                               marker_color=["#888" if p.dimension == SIMILARITY else "#1f77b4" for p in parts]))
        fig.update_layout(height=70 + 28 * len(parts), margin=dict(l=0, r=90, t=30, b=0),  # room for the labels
                          title=f"score {h.score:.3f}", font={"size": 13})
        fig.update_yaxes(automargin=True, tickfont={"size": 13})
        fig.update_xaxes(range=[lo, hi * 1.05], title_text="contribution to the score (one scale for all results)")
        b.plotly_chart(fig, width="stretch", key=f"bar{h.rank}")


def view_note(where: list[str], weights: dict[str, float] | None) -> None:
    """What the results share with the search page's (its filters, count, minimum similarity) and where they differ
    (weights moved here)."""
    state = app_state()
    parts = [f"{state.k} result(s)"] + ([f"minimum similarity {state.min_score:.2f}"] if state.min_score else []) \
        + ([f"filters: {md(' & '.join(where))}"] if where else [])
    st.caption("The search page's view: " + " · ".join(parts) + " (set in its sidebar).")
    if weights is not None:
        st.caption("Your weights here differ from the catalog's defaults, which the search page uses: the order "
                   "may differ from its.")


def main(frame: Frame) -> None:
    with frame.status:
        ctx = sidebar()
    if ctx is None:
        st.stop()
    frame.describe(describe(ctx))
    left, right = frame.left, frame.right  # where the search page has its query and results
    with left:
        st.caption("The search page's query (same photo and crop); choosing another here changes it there too.")
        try:
            photo = photo_picker(ctx)
            crop = crop_picker(photo, ctx) if photo else Crop()
        except USER_ERRORS as e:
            show_error(e)
            st.stop()
        sync_url(app_state())
    text, weight = state_text(ctx)
    if photo is None and not text.strip():
        left.info("Choose a photo (here or on the search page) to see how it is ranked.")
        st.stop()
    with right:
        try:
            searcher = get_searcher(ctx)
            rows = scorer_rows(searcher.ranker)
        except USER_ERRORS as e:
            show_error(e)
            st.stop()
        with st.expander("How each attribute is scored"):
            st.table([{k: plain(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows])
        state = app_state()
        bind("why_rank", state.rank, RANKS.__contains__)
        state.rank = mode = st.radio("Ranking", RANKS, horizontal=True, key="why_rank", format_func=ranking_name,
                                     help=f"{RANKING_HELP} The search page ranks the same way.")
        sync_url(state)
        weights = static_weights(searcher) if mode == "static" else None
        if weights is not None and weights == searcher.default_weights:
            weights = None
        if mode == "dynamic" and not dynamic_ready(ctx, searcher):
            st.stop()
        try:
            where = view_where(catalog_facets(ctx))
            query = embedded_query(ctx, photo, crop, text, weight)
            forget_votes_on_new_query(query_key(ctx, photo, crop, text, weight))
            res, shown = view_results(ctx, searcher, query, where, weights=weights)
        except USER_ERRORS as e:
            show_error(e)
            st.stop()
        explanation(res)
        view_note(where, weights)
        st.subheader("Results")
        result_rows(res, shown)

main(FRAME)
