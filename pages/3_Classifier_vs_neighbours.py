"""Classifier versus nearest neighbour: a classifier trained on shop photos can name a photo's product right while
the closest catalog picture is another product; a trained head makes the closest picture the right one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.query_sets import QuerySet
from core.explore.disagreements import (
    CATALOG_PICTURES,
    Case,
    DisagreementReport,
    default_label_order,
    display_name,
    first_with_cases,
    label_choices,
)
from core.explore.map_view import disagreements_figure
from core.explore.photo_sets import held_out_sets, training_sets
from core.explore.projection import UmapParams, warm_up_in_background
from ui.auth import can_edit
from ui.caches import Context
from ui.explore import Compared, compared_embedders, get_report, index_projection, map_is_quick, umap_controls
from ui.messages import USER_ERRORS, md, show_error
from ui.nav import set_app_icons, use_app_navigation
from ui.settings import settings
from ui.sidebar import sidebar
from ui.thumbnails import thumbnail_bytes

LIMIT = 12
FOLDER, CSV = "A folder of <category>/<image> files", "A queries CSV"
SIDE = 160  # pixels of each picture in a case


def _set_name(qs: QuerySet) -> str:
    return f"{md(qs.name)} ({qs.n} photos)"


def test_photos(ctx: Context) -> tuple[Path | None, Path | None]:
    """The held-out photos to test on (the catalog's own sets first, or a folder / CSV typed) and the root their
    image paths are relative to."""
    found = {_set_name(s): s.path for s in held_out_sets(ctx.catalog_dir)}
    typed = [] if settings().served else [FOLDER, CSV]  # a shared server reads no path a visitor types
    if not found and not typed:
        return None, None
    source = st.radio("Photos to test on (never used for training)", [*found, *typed], key="cvn_source")
    if source in found:
        return found[source], None
    if source == FOLDER:
        typed = st.text_input("Folder", key="cvn_folder", placeholder="/path/to/validation")
        return (Path(typed).expanduser() if typed else None), None
    typed = st.text_input("CSV (columns image and the label, or product_id)", key="cvn_csv")
    typed_root = st.text_input("Image paths are relative to (default: the CSV's folder)", key="cvn_root")
    return (Path(typed).expanduser() if typed else None), (Path(typed_root).expanduser() if typed_root else None)


def training_photos(ctx: Context) -> Path | None:
    """The labelled photos the classifier learns from: the catalog's training photos, else its own pictures."""
    found = {f"Shop photos: {_set_name(s)}": s.path for s in training_sets(ctx.catalog_dir)}
    options = [*found, f"Only {CATALOG_PICTURES}"]
    source = st.radio("Photos the classifier learns from", options, key="cvn_train",
                      help="A classifier learns from many labelled photos of each product; the catalog alone often "
                           "has one picture per product.")
    return found.get(source)


def choose_label(ctx: Context, pre: Compared, queries: Path, root: Path | None, train: Path | None,
                 trained: Compared | None) -> str:
    """The label picker; until someone picks, the first label on which the classifier is right where the closest
    catalog picture is wrong (the case this page is about) for these photos."""
    labels = label_choices(ctx.index)
    key = (str(ctx.catalog_dir), str(queries), str(train))
    state = st.session_state
    if state.get("cvn_label_for") != key:
        if state.get("cvn_label_for") is not None or state.get("cvn_label") not in labels:
            order = [lab for lab in default_label_order(ctx.index) if lab in labels]
            state["cvn_label"] = first_with_cases(
                order, lambda lab: get_report(pre, queries, lab, root, train=train, trained=trained),
                USER_ERRORS).label
        state["cvn_label_for"] = key
    return st.selectbox("Name each photo by", labels, key="cvn_label",
                        format_func=lambda c: "product" if c == "product_id" else c,
                        help="What the classifier learns to say about a photo. The page opens on the first label "
                             "where the classifier is right while the closest catalog picture is wrong.")


def picture(col, path: str, caption: str) -> None:
    data = thumbnail_bytes(path) if path else None
    if data:
        col.image(data, caption=caption, width=SIDE)
    else:
        col.caption(caption)


def right(ok: bool) -> str:
    return "right" if ok else "wrong"


def case_row(ctx: Context, rep: DisagreementReport, case: Case) -> None:
    """One photo, in words and pictures: the photo, the classifier's answer, the closest catalog picture, and the
    trained head's closest picture."""
    def name(value: str) -> str:
        return md(display_name(ctx.index, rep.label, value))

    words = (f"The classifier says **{name(case.clf_label)}** ({right(case.clf_label == case.label)}); the closest "
             f"catalog picture is **{name(case.nn_label)}** ({right(case.nn_label == case.label)}).")
    if case.trained_product:
        words += (f" With the trained head, the closest is **{name(case.trained_label)}** "
                  f"({right(case.trained_label == case.label)}).")
    st.markdown(words)
    cols = st.columns(4)
    picture(cols[0], case.image, f"Shopper photo: {display_name(ctx.index, rep.label, case.label)}")
    picture(cols[1], case.clf_image, f"Classifier: {display_name(ctx.index, rep.label, case.clf_label)} "
                                     f"({case.clf_prob:.0%} sure)")
    picture(cols[2], case.nn_image, f"Closest catalog picture: {display_name(ctx.index, rep.label, case.nn_label)}")
    if case.trained_product:
        picture(cols[3], case.trained_image,
                f"Closest with the trained head: {display_name(ctx.index, rep.label, case.trained_label)}")


def gallery(ctx: Context, rep: DisagreementReport, cases: list[Case], first: int = LIMIT) -> None:
    """Up to :data:`LIMIT` cases: the ``first`` shown, the others in an expander."""
    if not cases:
        st.caption("No such case on these photos.")
        return
    for case in cases[:first]:
        case_row(ctx, rep, case)
    rest = cases[first:LIMIT]
    if rest:
        more = f" ({LIMIT} of {len(cases)} shown)" if len(cases) > LIMIT else ""
        with st.expander(f"More photos like these{more}"):
            for case in rest:
                case_row(ctx, rep, case)


def fixed_sentence(rep: DisagreementReport, note: str) -> str:
    n = rep.counts()["classifier_only"]
    if not rep.trained_spec:
        return (f"No trained head is compared ({md(note)}): train one on the Evaluation page or with `python -m "
                "core train-metric`, then pick it in the sidebar's embedder list.")
    return (f"Search with a head trained by metric learning: the trained head fixes {len(rep.fixed())} of {n} — "
            "its closest catalog picture is the right one.")


def figures(rep: DisagreementReport) -> None:
    st.subheader("How often each is right", help=(
        "The classifier is a multinomial logistic regression (softmax) on the pretrained embedder's vectors, "
        f"standardised; it reached {rep.classifier.report['train_accuracy']:.0%} on its own training photos. "
        "The closest catalog picture is an exact cosine search over every catalog picture."))
    a, b, c = st.columns(3)
    a.metric("Classifier", f"{rep.accuracy_classifier:.1%}",
             help=f"Learned from {rep.n_train} photos ({rep.trained_on}), {len(rep.classifier.values)} classes.")
    b.metric("Closest catalog picture (pretrained)", f"{rep.accuracy_neighbour:.1%}",
             help=f"Embedder {rep.produced_by.get('embedder', '')}.")
    if rep.accuracy_trained is not None:
        c.metric("Closest catalog picture (trained head)", f"{rep.accuracy_trained:.1%}",
                 help=f"Embedder {rep.trained_spec}.")
    st.caption(f"Share of the {len(rep.cases)} photos it never saw ({md(rep.tested_on)}) named right. The "
               f"classifier learned from {md(rep.trained_on)}; no photo is used for both."
               + (f" {len(rep.skipped)} photo(s) skipped." if rep.skipped else ""))


def the_rest(ctx: Context, pre: Compared, rep: DisagreementReport) -> None:
    tab_nn, tab_conf = st.tabs(["Neighbour right, classifier wrong", "Where they disagree"])
    with tab_nn:
        gallery(ctx, rep, rep.of_kind("neighbour_only"))
    with tab_conf:
        conf = rep.disagreement_confusion()
        if conf:
            st.dataframe(pd.DataFrame([{"classifier says": k[0], "closest picture says": k[1], "photos": v}
                                       for k, v in conf.items()]), hide_index=True,
                         height=min(400, 40 + 35 * len(conf)))
        else:
            st.caption("The two never disagree on these photos.")
    st.subheader("The same photos on the map", help=(
        "Shaded regions: each catalog image gets the class the classifier predicts from its full-space vector, "
        "and each cell of the 2D grid takes the distance-weighted vote of those predictions among its nearest "
        "catalog images on the map (up to 10; fewer when classes have only a few images each). A full-space "
        "classifier has no exact 2D boundary, so the regions are an approximation, like every distance on a UMAP "
        "map. Photos are placed with UMAP transform."))
    st.caption("Each coloured region is where the classifier would answer that class; stars are photos it gets "
               "right while the closest catalog picture is wrong.")
    params = UmapParams()
    if can_edit():
        with st.expander("Map settings"):
            params = umap_controls("cvn")
    if "cvn_map_on" not in st.session_state:  # shown at once when it is quick; else when asked for
        st.session_state["cvn_map_on"] = map_is_quick(pre[0], params)
    if not st.toggle("Show the map", key="cvn_map_on",
                     help="The first map after the server starts takes a while to prepare; the figures above do "
                          "not wait for it."):
        warm_up_in_background()  # the map's maths prepare while the person reads the figures
        return
    try:
        fig = disagreements_figure(pre[0], index_projection(pre[0], params), rep)
    except USER_ERRORS as e:
        show_error(e)
        return
    st.plotly_chart(fig, key="cvn_map")


def main() -> None:
    use_app_navigation()
    st.set_page_config(page_title="Classifier vs neighbours", layout="wide")
    st.title("Classifier versus nearest neighbour")
    set_app_icons()
    ctx = sidebar()
    if ctx is None:
        st.stop()
    st.markdown("A network trained to **name** products can be right about what a shopper's photo shows, while "
                "the **closest** catalog picture is another product: being good at naming does not make distances "
                "mean \"same product\". Metric learning (a trained head) does.")
    pre, trained, note = compared_embedders(ctx)
    with st.expander("Which photos", expanded=False):
        queries, root = test_photos(ctx)
        train = training_photos(ctx)
    if queries is None:
        st.info("Give the labelled photos to test on." if not settings().served else
                "This catalog has no labelled photos to test on (queries.csv or a validation folder) on this server.")
        st.stop()
    try:
        label = choose_label(ctx, pre, queries, root, train, trained)
        rep = get_report(pre, queries, label, root, train=train, trained=trained)
    except USER_ERRORS as e:
        show_error(e)
        st.stop()
    n = rep.counts()["classifier_only"]
    st.subheader("Classifier right, neighbour wrong")
    st.markdown(f"On **{n}** of {len(rep.cases)} photos it never saw ({md(rep.tested_on)}), the classifier names "
                f"the right {'product' if rep.label == 'product_id' else md(rep.label)} while the closest catalog "
                f"picture is another. {fixed_sentence(rep, note)}")
    gallery(ctx, rep, sorted(rep.of_kind("classifier_only"), key=lambda c: not c.fixed), first=3)  # fixed first
    figures(rep)
    the_rest(ctx, pre, rep)


main()
