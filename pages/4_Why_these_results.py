"""Why these results: similarity + attribute filters, static sliders or dynamic weights, per-result contributions."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.embedding.query import embed_query
from core.search.engine import SearchOptions
from core.search.ranking import SIMILARITY, RankingError, default_weights, load_presets, save_preset
from ui.common import USER_ERRORS, get_searcher, show_error, sidebar

st.set_page_config(page_title="Why these results", layout="wide")
st.title("Why these results")
ctx = sidebar()
if ctx is None:
    st.stop()


try:
    searcher = get_searcher(ctx)
    ranker = searcher.ranker
except USER_ERRORS as e:
    show_error(e)
    st.stop()

with st.expander("Attribute scorers"):
    st.table([{"scorer": n, "source": r["source"], "offered": r["offered"],
               "accuracy": round(r.get("cv_accuracy", r.get("accuracy", float("nan"))), 3),
               "majority baseline": round(r.get("baseline", float("nan")), 3)}
              for n, r in ranker.attributes.reports.items()])

queries_csv = ctx.catalog_dir / "queries.csv"
up = st.file_uploader("Query photo", type=["jpg", "jpeg", "png", "webp", "bmp"])
src = up
if up is None and (ctx.catalog_dir / "queries").is_dir():
    examples = sorted(p.name for p in (ctx.catalog_dir / "queries").iterdir())[:200]
    if examples:
        src = ctx.catalog_dir / "queries" / st.selectbox("…or an example query", examples)
if src is None:
    st.info("Upload a photo to see how it is ranked.")
    st.stop()

mode = st.radio("Ranking", ["static", "dynamic", "distance"], horizontal=True,
                help="static: your weights; dynamic: weights predicted per query; distance: similarity only")
weights = None
if mode == "static":
    presets = load_presets()
    name = st.selectbox("Preset", ["default", *presets])
    base = default_weights(ranker.dims) if name == "default" else presets[name]
    cols = st.columns(len(ranker.dims))
    weights = {d: c.slider(d, 0.0, 3.0, float(base.get(d, 0.0)), 0.05, key=f"w_{name}_{d}")
               for d, c in zip(ranker.dims, cols)}
    new = st.text_input("Save these weights as preset")
    if st.button("Save preset") and new:
        try:
            save_preset(new, weights)
            st.success(f"saved preset {new}")
        except RankingError as e:
            show_error(e)
elif mode == "dynamic":
    try:
        searcher.net  # noqa: B018 - a clear message when no dynamic ranker is trained yet
    except RankingError as e:
        st.warning(str(e))
        if queries_csv.is_file() and st.button(f"Train on {queries_csv.name}"):
            from core.evaluation.rank_eval import train_dynamic

            bar = st.progress(0.0, text="Embedding training queries…")
            train_dynamic(ctx.index, ctx.embedder, queries_csv, progress=lambda i, n: bar.progress(i / max(n, 1)))
            bar.empty()
            st.rerun()
        st.stop()

try:
    query = embed_query(ctx.embedder, src.getvalue() if hasattr(src, "getvalue") else src)
    res = searcher.search(query, SearchOptions.make(k=10, rank=mode, weights=weights))
    img = query.image
except USER_ERRORS as e:
    show_error(e)
    st.stop()

left, right = st.columns([1, 2])
with left:
    st.image(img, caption="query", width="stretch")
    st.caption("Weights used: " + ", ".join(f"{d} {w:.2f}" for d, w in res.weights.items()))
with right:
    st.subheader("The query's predicted attributes")
    for d, probs in res.query_attributes.items():
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
        st.write(f"**{d}**: " + ", ".join(f"{v} ({p:.0%})" for v, p in top))

st.subheader("Results")
for h in res.hits:
    a, b = st.columns([1, 3])
    a.image(h.image, width="stretch")
    a.caption(f"#{h.rank} {h.product_id} · {h.fields.get('title', '')}")
    dims = list(h.contributions)
    fig = go.Figure(go.Bar(x=[h.contributions[d] for d in dims], y=dims, orientation="h",
                           text=[f"{h.contributions[d] / res.weights[d]:.2f} × {res.weights[d]:.2f}"
                                 if res.weights.get(d) else "weight 0" for d in dims],
                           marker_color=["#888" if d == SIMILARITY else "#1f77b4" for d in dims]))
    fig.update_layout(height=160, margin=dict(l=0, r=0, t=20, b=0), title=f"score {h.score:.3f}")
    b.plotly_chart(fig, width="stretch", key=f"bar{h.rank}")
