"""Classifier versus nearest neighbour: a softmax head can be right where the closest product is wrong."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.queries import labelled_query_sets
from core.explore.disagreements import DisagreementReport, label_choices
from core.explore.map_view import disagreements_figure
from core.explore.projection import UmapParams
from ui.auth import can_edit
from ui.common import USER_ERRORS, Context, md, show_error, sidebar
from ui.explore import get_projection, get_report, umap_controls
from ui.nav import use_app_navigation
from ui.settings import settings

LIMIT = 12
FOLDER, CSV = "A folder of <category>/<image> files", "A queries CSV"


def labelled_queries(ctx: Context) -> tuple[Path | None, Path | None]:
    """The labelled queries to compare on (the catalog's own sets first, or a folder / CSV typed) and the root
    their image paths are relative to."""
    found = {(f"Held-out images: {md(p.name)}" if p.is_dir() else f"The catalog's {md(p.name)}"): p
             for p in labelled_query_sets(ctx.catalog_dir)}
    typed = [] if settings().served else [FOLDER, CSV]  # a shared server reads no path a visitor types
    if not found and not typed:
        return None, None
    source = st.radio("Labelled queries", [*found, *typed], key="cvn_source")
    if source in found:
        return found[source], None
    if source == FOLDER:
        typed = st.text_input("Folder", key="cvn_folder", placeholder="/path/to/validation")
        return (Path(typed).expanduser() if typed else None), None
    typed = st.text_input("CSV (columns image and the label, or product_id)", key="cvn_csv")
    typed_root = st.text_input("Image paths are relative to (default: the CSV's folder)", key="cvn_root")
    return (Path(typed).expanduser() if typed else None), (Path(typed_root).expanduser() if typed_root else None)


def summary(rep: DisagreementReport) -> None:
    a, b, c = st.columns(3)
    a.metric("Classifier accuracy", f"{rep.accuracy_classifier:.1%}",
             help=f"Softmax over {len(rep.head.values)} classes; "
                  f"training accuracy {rep.head.report['train_accuracy']:.1%}.")
    b.metric("Nearest-neighbour accuracy", f"{rep.accuracy_neighbour:.1%}",
             help="Label of the single closest catalog product (exact cosine search).")
    c.metric("Queries", len(rep.cases), help=f"{len(rep.skipped)} skipped" if rep.skipped else None)
    counts = rep.counts()
    st.dataframe(pd.DataFrame([{"both right": counts["both_right"],
                                "classifier right, neighbour wrong": counts["classifier_only"],
                                "neighbour right, classifier wrong": counts["neighbour_only"],
                                "both wrong": counts["both_wrong"]}]), hide_index=True)
    conf = rep.disagreement_confusion()
    st.subheader("Where they disagree")
    if conf:
        st.caption("Queries where the classifier's class differs from the nearest product's class.")
        st.dataframe(pd.DataFrame([{"classifier says": k[0], "nearest neighbour says": k[1], "queries": v}
                                   for k, v in conf.items()]), hide_index=True, height=min(400, 40 + 35 * len(conf)))
    else:
        st.caption("The two never disagree on these queries.")


def gallery(rep: DisagreementReport, kind: str) -> None:
    cases = rep.of_kind(kind)
    if not cases:
        st.caption("No such case on these queries.")
        return
    st.caption(f"{len(cases)} case(s); showing {min(len(cases), LIMIT)}, most confident classifier first.")
    for case in cases[:LIMIT]:
        q, m, n = st.columns([1, 1.2, 1])
        q.image(case.image, caption=f"query · true {md(case.label)}", width=150)
        m.markdown(f"**Classifier:** {md(case.clf_label)} ({case.clf_prob:.0%})  \n"
                   f"**Nearest product:** {md(case.nn_product)} → {md(case.nn_label)}  \n"
                   f"cosine distance {case.nn_distance:.3f}")
        n.image(case.nn_image, caption=f"nearest: {md(case.nn_product)}", width=150)


def main() -> None:
    use_app_navigation()
    st.set_page_config(page_title="Classifier vs neighbours", layout="wide")
    st.title("Classifier versus nearest neighbour")
    ctx = sidebar()
    if ctx is None:
        st.stop()
    st.caption("A network trained as a classifier separates classes with boundaries; that does not make the "
               "members of a class close to each other. Here a softmax classifier (multinomial logistic regression "
               "on the catalog's embeddings, every view of every product) and the nearest catalog product in the "
               "full embedding space each label the same queries.")
    label = st.selectbox("Label", label_choices(ctx.index), key="cvn_label")
    queries, root = labelled_queries(ctx)
    if queries is None:
        st.info("Give the labelled queries to compare on." if not settings().served else
                "This catalog has no labelled queries (queries.csv or a validation folder) on this server.")
        st.stop()
    try:
        rep = get_report(ctx, queries, label, root)
    except USER_ERRORS as e:
        show_error(e)
        st.stop()
    if not rep.cases:
        st.warning("None of the queries could be used."
                   + (f" First problem: {md(rep.skipped[0])}" if rep.skipped else ""))
        st.stop()
    summary(rep)
    kinds = {"classifier_only": "Classifier right, neighbour wrong",
             "neighbour_only": "Neighbour right, classifier wrong"}
    first = next((k for k in kinds if rep.of_kind(k)), "classifier_only")  # open a tab that has cases
    tabs = st.tabs(list(kinds.values()), default=kinds[first])
    for tab, kind in zip(tabs, kinds):
        with tab:
            gallery(rep, kind)
    st.subheader("The same cases on the map")
    st.caption("Shaded regions: each catalog image gets the class the classifier predicts from its full-space "
               "vector, and each cell of the 2D grid takes the distance-weighted vote of those predictions among "
               "its nearest catalog images on the map (up to 10; fewer when classes have only a few images each). "
               "A full-space classifier has no exact 2D boundary, so the regions are an "
               "approximation, like every distance on a UMAP map. Queries are placed with UMAP `transform`. The "
               "legend names each region's class.")
    if can_edit():
        with st.expander("Map settings"):
            params = umap_controls("cvn")
    else:
        params = UmapParams()
    try:
        fig = disagreements_figure(ctx.index, get_projection(ctx, params), rep)
    except USER_ERRORS as e:
        show_error(e)
        st.stop()
    st.plotly_chart(fig, key="cvn_map")


main()
