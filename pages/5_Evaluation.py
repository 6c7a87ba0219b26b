"""Evaluation: recall@K / mAP@10 of several embedders side by side, and a browser of the missed queries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core.config.defaults import METRIC_BASE_SPEC
from core.config.paths import cache_dir, slug
from core.embedding.head import head_specs
from core.evaluation.evaluate import Evaluation, Failure, evaluate, failure_details, query_files_near
from core.explore.map_view import map_figure, map_table
from core.explore.projection import UmapParams
from core.metric.train import FROM_CATALOG, FROM_CATALOG_BASE, TrainConfig, train_head
from ui.auth import edit_gate
from ui.caches import Context, get_embedder, index_for, index_searcher
from ui.explore import index_projection
from ui.messages import USER_ERRORS, flash, md, show_error
from ui.nav import use_app_navigation
from ui.settings import settings
from ui.sidebar import sidebar

OTHER_CSV = "Other CSV…"


@dataclass
class Request:
    queries: str
    label: str
    specs: list[str]
    rank: str


def request(ctx: Context) -> Request:
    """What to evaluate: labelled queries, relevance label, embedders and ranking."""
    found = query_files_near(ctx.catalog_dir)
    served = settings().served  # a shared server reads no path or spec a visitor types
    choice = st.selectbox("Labelled queries", [str(p) for p in found] + ([] if served else [OTHER_CSV]),
                          key="ev_queries",
                          help="CSV with image,<label> columns; `python -m core import` writes queries-<split>.csv")
    queries = st.text_input("Queries CSV", key="ev_queries_path") if choice == OTHER_CSV else choice
    label = st.selectbox("Relevant when the same", ["product_id", "category"], key="ev_label",
                         help="product_id: the exact product; category: any product of the query's category")
    offered = list(dict.fromkeys([ctx.spec, *head_specs(ctx.spec)]))
    chosen = [s for s in st.session_state.get("ev_specs", [ctx.spec]) if s in offered] or [ctx.spec]
    trained = st.session_state.pop("tr_new_spec", None)  # a head trained below: compared next to the others
    st.session_state["ev_specs"] = list(dict.fromkeys([*chosen, *([trained] if trained in offered else [])]))
    specs = st.multiselect("Embedders to compare", offered, key="ev_specs",
                           help="Trained heads found in the cache are listed; train one below, or with "
                                "`python -m core train-metric`")
    extra = "" if served else st.text_input("…and another embedder spec", key="ev_extra")
    specs = list(dict.fromkeys([*specs, *([extra.strip()] if extra.strip() else [])]))
    rank = st.radio("Ranking", ["static", "distance"], horizontal=True, key="ev_rank",
                    help="static: the app's default search (nearest neighbours re-ranked by the attribute filters, "
                         "see Why these results); distance: nearest neighbours only")
    return Request(queries or "", label, specs, rank)


def run(ctx: Context, req: Request) -> dict[str, tuple[Evaluation, list[Failure]]]:
    """Evaluate each embedder on the request (each failure is one line; the others still run)."""
    results = {}
    for spec in req.specs:
        try:
            emb = get_embedder(spec)
            index = index_for(ctx, emb)
            searcher = index_searcher(index, emb) if req.rank == "static" else None
            bar = st.progress(0.0, text=f"Evaluating {md(spec)}…")
            ev = evaluate(index, emb, Path(req.queries), label=req.label, rank=req.rank, searcher=searcher,
                          progress=lambda i, n, b=bar, s=spec: b.progress(i / max(n, 1), text=f"Evaluating {md(s)}…"))
            bar.empty()
            results[spec] = (ev, failure_details(ev, index, req.label))
        except USER_ERRORS as e:
            show_error(e)
    return results


def misses(results: dict[str, tuple[Evaluation, list[Failure]]]) -> None:
    st.subheader("Missed queries")
    spec = st.selectbox("Embedder", list(results), key="ev_fail_spec")
    fails = results[spec][1]
    if not fails:
        st.success("Every query found its product first.")
        return
    i = st.number_input(f"Miss (1–{len(fails)})", 1, len(fails), 1, key="ev_fail_i") - 1
    f = fails[int(i)]
    where = f"ranked {f.rank}" if f.rank else "not in the top 10"
    st.markdown(f"**Query** {md(Path(f.query).name)} — expected **{md(f.expected)}**, {where}"
                + (f" (score {f.expected_score:.3f})" if f.expected_score is not None else ""))
    cols = st.columns(2 + min(len(f.above), 5))
    cols[0].image(f.query, caption="query", width="stretch")
    if f.expected_image:
        cols[1].image(f.expected_image, caption=f"expected: {md(f.expected)}", width="stretch")
    for c, (pid, score, img) in zip(cols[2:], f.above):
        if img:
            c.image(img, caption=f"{md(pid)} · {score:.3f}", width="stretch")
    st.dataframe(pd.DataFrame(f.above, columns=["product_id", "score", "image"]), width="stretch")


def maps(ctx: Context, specs: list[str], label: str) -> None:
    st.subheader("Embedding map before and after")
    st.caption("The catalog of each embedder projected with UMAP (cosine, cached per index), coloured by the "
               "relevance label: after metric learning the views of one label should gather.")
    if not st.toggle("Show the maps (the first projection of a catalog takes a while)", key="ev_maps"):
        return
    cols = st.columns(min(len(specs), 2))
    for col, spec in zip(cols, specs[:2]):
        with col:
            try:
                index = index_for(ctx, get_embedder(spec))
                rows = map_table(index, index_projection(index, UmapParams()))
                st.plotly_chart(map_figure(rows, label if rows and label in rows[0] else "product_id", title=spec),
                                key=f"ev_map_{spec}")
            except USER_ERRORS as e:
                show_error(e)


NO_VIEWS = "none: made-up shop photos of the catalog's own pictures"


def train_form(ctx: Context, evaluated_on: str) -> None:
    """Train a metric-learning head on this catalog (``train-metric``'s defaults), with progress; the head is then
    offered in "Embedders to compare", so its before/after metrics and maps are one click away."""
    with st.expander("Train a head on this catalog (metric learning)", icon=":material/model_training:"):
        if not edit_gate("training a head"):
            return
        st.caption(f"Fits a projection head on {METRIC_BASE_SPEC} features so that distance means \"same product\" "
                   "(the same as `python -m core train-metric`); a few minutes on 2 CPU cores. Without labelled "
                   "photos it learns from made-up shop photos of each catalog picture (close-ups, several copies, "
                   "other products behind, other light, a hand or a price tag over it: `--from-catalog`).")
        sets = [str(p) for p in query_files_near(ctx.catalog_dir)]
        views = st.selectbox("Labelled photos to learn from", [*sets, NO_VIEWS], key="tr_views",
                             help="Photos of catalog products (image,product_id); pick another set than the one you "
                                  "evaluate on (e.g. queries-train.csv, then evaluate on queries-val.csv).")
        if views == evaluated_on:
            st.warning("These are also the queries evaluated above: the head will have seen them, so its "
                       "figures on them will be too good. Evaluate on another set.")
        epochs = st.slider("Epochs at most", 1, TrainConfig().epochs, TrainConfig().epochs, key="tr_epochs")
        if not st.button("Train", key="tr_go", type="primary"):
            return
        out = cache_dir() / "heads" / slug(str(ctx.catalog_dir)) / f"e{epochs}-{slug(Path(views).stem)}"
        bar = st.progress(0.0, text="Listing the catalog and the photos…")
        cfg = TrainConfig(epochs=epochs, **(FROM_CATALOG if views == NO_VIEWS else {}))
        base = FROM_CATALOG_BASE if views == NO_VIEWS else METRIC_BASE_SPEC
        try:
            res = train_head(get_embedder(base), ctx.catalog_dir, None if views == NO_VIEWS else views, out, cfg,
                             progress=lambda stage, i, n: bar.progress(min(i / max(n, 1), 1.0),
                                                                       text=f"{stage.capitalize()} {i} of {n}…"))
        except USER_ERRORS as e:
            bar.empty()
            show_error(e)
            return
        bar.empty()
        if res.synthetic and not res.beats_base:
            st.warning(f"Trained {len(res.history)} epoch(s) in {res.seconds:.0f} s, but the head does not find "
                       f"the products of held-out made-up shop photos more often than {base} as it is "
                       f"({res.best.get('recall@1', 0):.3f} vs {res.zero_shot.get('recall@1', 0):.3f} first-hit "
                       "rate): keep the embedder you have.")
            return
        check = (" Made-up photos alone are weak evidence: use it only if it beats the base embedder on your "
                 "labelled photos here." if res.synthetic else "")
        flash(f"Trained {len(res.history)} epoch(s) in {res.seconds:.0f} s: {md(res.spec)} is now among "
              f"\"Embedders to compare\"; press Evaluate to see it next to the base embedder.{check}")
        st.session_state["tr_new_spec"] = res.spec
        st.rerun()


def main() -> None:
    use_app_navigation()
    st.set_page_config(page_title="Evaluation", layout="wide")
    st.title("Evaluation")
    ctx = sidebar()
    if ctx is None:
        st.stop()
    flash()
    req = request(ctx)
    train_form(ctx, req.queries)
    allowed = not settings().served or edit_gate("running an evaluation (every query through the model)")
    if st.button("Evaluate", type="primary", key="ev_run", disabled=not (req.queries and req.specs and allowed)):
        st.session_state["ev_results"] = (str(ctx.catalog_dir), run(ctx, req))
        st.session_state["ev_rank_done"] = req.rank
    done_on, results = st.session_state.get("ev_results") or ("", {})
    if not results or done_on != str(ctx.catalog_dir):  # results belong to the catalog they were computed on
        return
    st.subheader("Metrics")
    st.caption(f"Ranking: {st.session_state.get('ev_rank_done', req.rank)}")
    st.dataframe(pd.DataFrame({spec: ev.metrics for spec, (ev, _) in results.items()}).T, width="stretch",
                 column_config={"_index": st.column_config.TextColumn("embedder", width="large")})  # a spec whole
    for spec, (ev, _) in results.items():
        if ev.skipped:
            st.warning(f"{md(spec)}: {len(ev.skipped)} query row(s) skipped, e.g. {md(ev.skipped[0])}")
    misses(results)
    maps(ctx, list(results), req.label)


main()
