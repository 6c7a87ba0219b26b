"""Evaluation: recall@K / mAP@10 of several embedders side by side, and a browser of the missed queries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core.config.defaults import METRIC_BASE_SPEC
from core.config.paths import cache_dir, slug
from core.embedding.head_config import head_specs
from core.evaluation.evaluate import Evaluation, Failure, before_after, evaluate, failure_details, query_files_near
from core.explore.map_view import map_figure, map_table
from core.explore.projection import UmapParams
from core.metric.train import FROM_CATALOG, FROM_CATALOG_BASE, TrainConfig, train_head
from ui.auth import edit_gate
from ui.caches import Context, get_embedder, index_for, index_searcher, shipped_head
from ui.explore import index_projection
from ui.messages import USER_ERRORS, flash, md, show_error
from ui.nav import set_app_icons, use_app_navigation
from ui.settings import settings
from ui.sidebar import sidebar
from ui.words import MAP_HELP, RANKING_HELP, embedder_name, label_name, metrics_table, ranking_name

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
    choice = st.selectbox("Labelled test photos", [str(p) for p in found] + ([] if served else [OTHER_CSV]),
                          key="ev_queries", format_func=lambda p: p if p == OTHER_CSV else Path(p).name,
                          help="A CSV with image,<label> columns (the queries); `python -m core import` writes "
                               "queries-<split>.csv")
    queries = st.text_input("Queries CSV", key="ev_queries_path") if choice == OTHER_CSV else choice
    label = st.selectbox("A result is right when it is", ["product_id", "category"], key="ev_label",
                         format_func=label_name, help="The relevance label: product_id (the exact product) or "
                                                      "category (any product of the photo's category).")
    first = [ctx.spec] if ctx.location else before_after(ctx.spec, ctx.catalog_dir)  # before and after
    offered = list(dict.fromkeys([ctx.spec, *first, *head_specs(ctx.spec)]))
    if st.session_state.get("ev_specs_for") != (where := (str(ctx.catalog_dir), ctx.spec)):  # another catalog
        st.session_state["ev_specs_for"] = where
        st.session_state.pop("ev_specs", None)
    chosen = [s for s in st.session_state.get("ev_specs", first) if s in offered] or first
    trained = st.session_state.pop("tr_new_spec", None)  # a head trained below: compared next to the others
    st.session_state["ev_specs"] = list(dict.fromkeys([*chosen, *([trained] if trained in offered else [])]))
    shipped = shipped_head(ctx.catalog_dir)
    specs = st.multiselect("Networks to compare", offered, key="ev_specs",
                           format_func=lambda s: embedder_name(s, shipped),
                           help="The embedders: the pretrained network and the trained heads found (metric "
                                "learning); train one below, or with `python -m core train-metric`")
    extra = "" if served else st.text_input("…and another network", key="ev_extra",
                                             help="An embedder spec, e.g. `efficientnet-lite0+head:DIR`.")
    specs = list(dict.fromkeys([*specs, *([extra.strip()] if extra.strip() else [])]))
    rank = st.radio("Ranking", ["static", "distance"], horizontal=True, key="ev_rank", format_func=ranking_name,
                    help=RANKING_HELP)
    return Request(queries or "", label, specs, rank)


def run(ctx: Context, req: Request) -> dict[str, tuple[Evaluation, list[Failure]]]:
    """Evaluate each embedder on the request (each failure is one line; the others still run)."""
    results = {}
    for spec in req.specs:
        try:
            emb = get_embedder(spec)
            index = index_for(ctx, emb)
            searcher = index_searcher(index, emb) if req.rank == "static" else None
            what = f"Searching each test photo with {md(embedder_name(spec, shipped_head(ctx.catalog_dir)))}"
            bar = st.progress(0.0, text=f"{what}…")
            ev = evaluate(index, emb, Path(req.queries), label=req.label, rank=req.rank, searcher=searcher,
                          progress=lambda i, n, b=bar, w=what: b.progress(i / max(n, 1), text=f"{w}: {i} of {n}…"))
            bar.empty()
            results[spec] = (ev, failure_details(ev, index, req.label))
        except USER_ERRORS as e:
            show_error(e)
    return results


def misses(ctx: Context, results: dict[str, tuple[Evaluation, list[Failure]]]) -> None:
    st.subheader("Photos it missed")
    shipped = shipped_head(ctx.catalog_dir)
    spec = st.selectbox("Network", list(results), key="ev_fail_spec", format_func=lambda s: embedder_name(s, shipped))
    fails = results[spec][1]
    if not fails:
        st.success("Every query found its product first.")
        return
    i = st.number_input(f"Missed photo (1–{len(fails)})", 1, len(fails), 1, key="ev_fail_i") - 1
    f = fails[int(i)]
    where = f"found at place {f.rank}" if f.rank else "not in the first 10"
    st.markdown(f"**Photo** {md(Path(f.query).name)} — expected **{md(f.expected)}**, {where}"
                + (f" (similarity {f.expected_score:.3f})" if f.expected_score is not None else ""))
    cols = st.columns(2 + min(len(f.above), 5))
    cols[0].image(f.query, caption="photo", width="stretch")
    if f.expected_image:
        cols[1].image(f.expected_image, caption=f"expected: {md(f.expected)}", width="stretch")
    for c, (pid, score, img) in zip(cols[2:], f.above):
        if img:
            c.image(img, caption=f"{md(pid)} · {score:.3f}", width="stretch")
    st.caption("Ranked above the expected product:")
    st.dataframe(pd.DataFrame(f.above, columns=["Product", "Similarity", "Picture"]), width="stretch")


def maps(ctx: Context, specs: list[str], label: str) -> None:
    st.subheader("Embedding map before and after")
    st.caption("The catalog as each network sees it, coloured by what counts as right: once a network is trained "
               "for the catalog, the pictures of one product (or category) should gather.",
               help=MAP_HELP + " Training a network for the catalog is metric learning.")
    if not st.toggle("Show the maps (the first drawing of a catalog takes a while)", key="ev_maps"):
        return
    cols = st.columns(min(len(specs), 2))
    for col, spec in zip(cols, specs[:2]):
        with col:
            try:
                index = index_for(ctx, get_embedder(spec))
                rows = map_table(index, index_projection(index, UmapParams()))
                st.plotly_chart(map_figure(rows, label if rows and label in rows[0] else "product_id",
                                           title=embedder_name(spec, shipped_head(ctx.catalog_dir))),
                                key=f"ev_map_{spec}")
            except USER_ERRORS as e:
                show_error(e)


NO_VIEWS = "none: made-up shop photos of the catalog's own pictures"


def train_form(ctx: Context, evaluated_on: str) -> None:
    """Train a metric-learning head on this catalog (``train-metric``'s defaults), with progress; the head is then
    offered in "Embedders to compare", so its before/after metrics and maps are one click away."""
    with st.expander("Train a network for this catalog", icon=":material/model_training:"):
        if not edit_gate("training a network for this catalog"):
            return
        st.caption("Teaches a small addition to the pretrained network, from this catalog's photos, so that photos "
                   "of one product land close together; a few minutes on 2 CPU cores. Without labelled photos it "
                   "learns from made-up shop photos of each catalog picture (close-ups, several copies, other "
                   "products behind, other light, a hand or a price tag over it).",
                   help=f"Metric learning: a projection head on {METRIC_BASE_SPEC} features, the same as `python -m "
                        "core train-metric` (`--from-catalog` without labelled photos).")
        sets = [str(p) for p in query_files_near(ctx.catalog_dir)]
        views = st.selectbox("Labelled photos to learn from", [*sets, NO_VIEWS], key="tr_views",
                             format_func=lambda p: p if p == NO_VIEWS else Path(p).name,
                             help="Photos of catalog products (image,product_id); pick another set than the one you "
                                  "evaluate on (e.g. queries-train.csv, then evaluate on queries-val.csv).")
        if views == evaluated_on:
            st.warning("These are also the test photos above: the trained network will have seen them, so its "
                       "figures on them will be too good. Evaluate on another set.")
        most = TrainConfig().epochs
        epochs = st.slider("Passes over the photos at most", 1, most, most, key="tr_epochs",
                           help="Epochs: training stops earlier once the figures stop improving.")
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
                       "the products of held-out made-up shop photos more often than the "
                       f"{embedder_name(base).lower()} as it is (right product first "
                       f"{res.best.get('recall@1', 0):.0%} vs "
                       f"{res.zero_shot.get('recall@1', 0):.0%}): keep the network you have.")
            return
        check = (" Made-up photos alone are weak evidence: use it only if it beats the pretrained network on your "
                 "labelled photos here." if res.synthetic else "")
        flash(f"Trained {len(res.history)} epoch(s) in {res.seconds:.0f} s: {md(embedder_name(res.spec))} is now "
              f"among \"Networks to compare\"; press Evaluate to see it next to the pretrained network.{check}")
        st.session_state["tr_new_spec"] = res.spec
        st.rerun()


def main() -> None:
    use_app_navigation()
    st.set_page_config(page_title="Evaluation", layout="wide")
    st.title("Evaluation")
    set_app_icons()
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
    st.caption(f"Ranking: {ranking_name(st.session_state.get('ev_rank_done', req.rank))}")
    table, columns = metrics_table({spec: ev.metrics for spec, (ev, _) in results.items()},
                                   shipped_head(ctx.catalog_dir))
    st.dataframe(table, width="stretch", column_config=columns)
    for spec, (ev, _) in results.items():
        if ev.skipped:
            st.warning(f"{md(embedder_name(spec))}: {len(ev.skipped)} photo row(s) skipped, e.g. {md(ev.skipped[0])}")
    misses(ctx, results)
    maps(ctx, list(results), req.label)


main()
