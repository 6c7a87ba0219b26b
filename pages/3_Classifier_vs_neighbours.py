"""Classifier versus nearest neighbour: a softmax head can be right where the closest product is wrong."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.catalog import product_columns
from core.explore.disagreements import decision_regions
from core.explore.map_view import regions_figure
from ui.common import USER_ERRORS, show_error, sidebar
from ui.explore import get_projection, get_report, umap_controls

st.set_page_config(page_title="Classifier vs neighbours", layout="wide")
st.title("Classifier versus nearest neighbour")
ctx = sidebar()
if ctx is None:
    st.stop()

st.caption("A network trained as a classifier separates classes with boundaries; that does not make the members "
           "of a class close to each other. Here a softmax classifier (multinomial logistic regression on the "
           "catalog's embeddings, every view of every product) and the nearest catalog product in the full "
           "embedding space each label the same queries.")

fields = [c for c in product_columns(ctx.index.products) if c != "title"]
labels = [c for c in ("category", *fields, "product_id") if c == "product_id" or c in fields]
label = st.selectbox("Label", list(dict.fromkeys(labels)), key="cvn_label")

default_csv = ctx.catalog_dir / "queries.csv"
sibling = ctx.catalog_dir.parent / "validation"
choices = []
if default_csv.is_file():
    choices.append("The catalog's queries.csv")
if sibling.is_dir() and sibling != ctx.catalog_dir:
    choices.append(f"Held-out images: {sibling}")
choices += ["A folder of <category>/<image> files", "A queries CSV"]
source = st.radio("Labelled queries", choices, key="cvn_source")
root = None
if source.startswith("The catalog"):
    queries = default_csv
elif source.startswith("Held-out"):
    queries = sibling
elif source.startswith("A folder"):
    typed = st.text_input("Folder", key="cvn_folder", placeholder="/path/to/validation")
    queries = Path(typed).expanduser() if typed else None
else:
    typed = st.text_input("CSV (columns image and the label, or product_id)", key="cvn_csv")
    typed_root = st.text_input("Image paths are relative to (default: the CSV's folder)", key="cvn_root")
    queries = Path(typed).expanduser() if typed else None
    root = Path(typed_root).expanduser() if typed_root else None
if queries is None:
    st.info("Give the labelled queries to compare on.")
    st.stop()

try:
    ctx.index.labels(label)
    rep = get_report(ctx, queries, label, root)
except USER_ERRORS as e:
    show_error(e)
    st.stop()
if not rep.cases:
    st.warning("None of the queries could be used." + (f" First problem: {rep.skipped[0]}" if rep.skipped else ""))
    st.stop()

a, b, c = st.columns(3)
a.metric("Classifier accuracy", f"{rep.accuracy_classifier:.1%}",
         help=f"Softmax over {len(rep.head.values)} classes; training accuracy "
              f"{rep.head.report['train_accuracy']:.1%}.")
b.metric("Nearest-neighbour accuracy", f"{rep.accuracy_neighbour:.1%}",
         help="Label of the single closest catalog product (exact cosine search).")
c.metric("Queries", len(rep.cases), help=f"{len(rep.skipped)} skipped" if rep.skipped else None)
counts = rep.counts()
st.dataframe(pd.DataFrame([{"both right": counts["both_right"], "classifier right, neighbour wrong":
                            counts["classifier_only"], "neighbour right, classifier wrong": counts["neighbour_only"],
                            "both wrong": counts["both_wrong"]}]), hide_index=True)

conf = rep.disagreement_confusion()
st.subheader("Where they disagree")
if conf:
    st.caption("Queries where the classifier's class differs from the nearest product's class.")
    st.dataframe(pd.DataFrame([{"classifier says": k[0], "nearest neighbour says": k[1], "queries": v}
                               for k, v in conf.items()]), hide_index=True, height=min(400, 40 + 35 * len(conf)))
else:
    st.caption("The two never disagree on these queries.")

LIMIT = 12


def gallery(kind: str) -> None:
    cases = rep.of_kind(kind)
    if not cases:
        st.caption("No such case on these queries.")
        return
    st.caption(f"{len(cases)} case(s); showing {min(len(cases), LIMIT)}, most confident classifier first.")
    for case in cases[:LIMIT]:
        q, m, n = st.columns([1, 1.2, 1])
        q.image(case.image, caption=f"query · true {case.label}", width=150)
        m.markdown(f"**Classifier:** {case.clf_label} ({case.clf_prob:.0%})  \n"
                   f"**Nearest product:** {case.nn_product} → {case.nn_label}  \n"
                   f"cosine distance {case.nn_distance:.3f}")
        n.image(case.nn_image, caption=f"nearest: {case.nn_product}", width=150)


t1, t2 = st.tabs(["Classifier right, neighbour wrong", "Neighbour right, classifier wrong"])
with t1:
    gallery("classifier_only")
with t2:
    gallery("neighbour_only")

st.subheader("The same cases on the map")
st.caption("Shaded regions: each catalog image gets the class the classifier predicts from its full-space "
           "vector, and each cell of the 2D grid takes the distance-weighted vote of those predictions among "
           "its nearest catalog images on the map (up to 10; fewer when classes have only a few images each). "
           "A full-space classifier has no exact 2D boundary, so the regions are an "
           "approximation, like every distance on a UMAP map. Queries are placed with UMAP `transform`.")
with st.expander("Map settings"):
    params = umap_controls("cvn")
try:
    proj = get_projection(ctx, params)
    vecs = ctx.index.vectors[proj.vector_ids]
    regions = decision_regions(rep.head, proj.coords, vecs)
    case_xy = proj.transform(rep.query_vectors)
except USER_ERRORS as e:
    show_error(e)
    st.stop()
st.plotly_chart(regions_figure(proj.coords, regions, rep.cases, case_xy), key="cvn_map")
