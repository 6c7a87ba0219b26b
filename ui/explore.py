"""Cached projection and classifier-versus-neighbour report for the exploration pages (progress shown while
computing)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.embedding import Embedder
from core.explore.disagreements import DisagreementReport, compare, embedders_to_compare
from core.explore.photo_sets import PhotoVectors
from core.explore.prepared_classifier import Classifiers, prepared_classifier_path, prepared_classifiers
from core.explore.prepared_photos import prepared_photos, prepared_photos_path
from core.explore.projection import (
    MAX_FIT,
    WARM_UP,
    WARM_UP_STEPS,
    Projection,
    UmapParams,
    compiled,
    project,
    projection_dir,
    warm_up_in_background,
)
from core.index import IndexBackend
from ui.caches import Context, get_embedder, index_for
from ui.messages import USER_ERRORS
from ui.progress_bar import LazyBar
from ui.words import MAP_SETTINGS

Compared = tuple[IndexBackend, Embedder]  # an embedder with its index of the catalog


@st.cache_resource(show_spinner=False, max_entries=6)
def _projection(root: str, fingerprint: str, params: UmapParams, _index: IndexBackend) -> Projection:
    n = int(_index.alive.sum())
    cached = (projection_dir(_index, params) / "CURRENT").exists()
    msg = ("Loading the cached map…" if cached else
           f"Projecting {n:,} images with UMAP (first time for these settings; cached afterwards)"
           + (f" — fitting on a random {MAX_FIT:,} and placing the rest" if n > MAX_FIT else "") + "…")
    if not cached and (warm := warm_up_in_background()).is_alive():
        wait_for_warm_up(warm)
    bar = st.progress(0.0, text=msg)
    try:
        return project(_index, params, progress=lambda i, t: bar.progress(i / max(t, 1), text=msg))
    finally:
        bar.empty()


def wait_for_warm_up(warm: threading.Thread, show: Callable[[float, str], None] | None = None,
                     tick: float = 1.0) -> None:
    """Wait for UMAP's compile (once per server process) with a bar that counts its steps
    (:data:`~core.explore.projection.WARM_UP_STEPS`) and a clock that moves every ``tick`` seconds; ``show``
    draws (share done, text), by default an ``st.progress`` removed afterwards."""
    bar = None
    if show is None:
        bar = st.progress(0.0)
        show = lambda value, text: bar.progress(value, text=text)  # noqa: E731
    start = time.monotonic()
    while warm.is_alive():
        _, done, total = WARM_UP.latest()
        total = total or len(WARM_UP_STEPS)
        step = WARM_UP_STEPS[min(done, len(WARM_UP_STEPS) - 1)]
        show(done / total, f"Preparing the map's maths (once after the server starts): {step}, step "
                           f"{min(done + 1, total)} of {total} · {time.monotonic() - start:.0f} s…")
        warm.join(tick)
    if bar is not None:
        bar.empty()


def get_projection(ctx: Context, params: UmapParams) -> Projection:
    return index_projection(ctx.index, params)


def index_projection(index: IndexBackend, params: UmapParams) -> Projection:
    """The (disk- and memory-cached) UMAP projection of any index."""
    return _projection(str(index.root), index.fingerprint, params, index)


def map_is_quick(index: IndexBackend, params: UmapParams) -> bool:
    """Whether the map of ``index`` is drawn in a moment: its projection is cached on disk and this process has
    compiled UMAP (placing photos on it compiles otherwise)."""
    return compiled() and (projection_dir(index, params) / "CURRENT").exists()


@st.cache_resource(show_spinner=False)
def _photo_vectors() -> PhotoVectors:
    """Photos embedded once per process and embedder: every label, photo set and visitor reuses them."""
    return PhotoVectors()


@st.cache_resource(show_spinner=False, max_entries=16)
def _seeded(catalog_root: str, spec: str, stamp: float, _embedder: Embedder) -> int:
    """The photo vectors prepared beside a catalog for an embedder, remembered (once per file version)."""
    return _photo_vectors().seed(_embedder, prepared_photos(catalog_root, _embedder))


@st.cache_resource(show_spinner=False, max_entries=16)
def _classifiers(catalog_root: str, spec: str, stamp: float, _embedder: Embedder) -> Classifiers:
    """The classifiers prepared beside a catalog for an embedder (once per file version), and those fitted since."""
    return prepared_classifiers(catalog_root, _embedder)


@st.cache_resource(show_spinner=False, max_entries=12)
def _report(root: str, fingerprint: str, queries: str, qroot: str | None, train: str | None, label: str,
            stamps: tuple, trained_key: tuple, _pre: Compared, _trained: Compared | None) -> DisagreementReport:
    bar = LazyBar("Embedding photos")
    memo = _photo_vectors()
    for index, emb in [_pre, *([_trained] if _trained else [])]:  # photos embedded ahead (the demo's)
        _seeded(str(index.catalog_root), emb.spec, _stamp(prepared_photos_path(index.catalog_root, emb)), emb)

    def vectors(embedder, paths, desc, _progress):
        return memo(embedder, paths, desc, lambda i, n: bar(i, n, f"Embedding the {desc}"))

    try:
        what = "product" if label == "product_id" else label
        with st.spinner(f"Naming each photo's {what} with the classifier and with the closest catalog picture…"):
            fitted = _classifiers(str(_pre[0].catalog_root), _pre[1].spec,
                                  _stamp(prepared_classifier_path(_pre[0].catalog_root, _pre[1])), _pre[1])
            return compare(_pre[0], _pre[1], queries, label, root=qroot, train=train, trained=_trained,
                           vectors=vectors, progress=lambda i, n: bar(i, n, "Training the classifier, steps"),
                           classifiers=fitted)
    finally:
        bar.empty()


def _stamp(p: Path | None) -> float:
    return p.stat().st_mtime if p is not None and p.exists() else 0.0


def get_report(pre: Compared, queries: Path, label: str, root: Path | None = None, *, train: Path | None = None,
               trained: Compared | None = None) -> DisagreementReport:
    """The classifier-versus-neighbour report (cached per index generation, photo sets and label; the photos'
    vectors are kept per embedder across labels and sets)."""
    index = pre[0]
    trained_key = (trained[1].spec, trained[0].fingerprint) if trained else ()
    return _report(str(index.root), index.fingerprint, str(queries), str(root) if root else None,
                   str(train) if train else None, label, (_stamp(queries), _stamp(train)), trained_key, pre, trained)


def compared_embedders(ctx: Context) -> tuple[Compared, Compared | None, str]:
    """(the pretrained embedder with its index of the catalog, the trained head's or None, why there is none):
    the sidebar's head and its base, or the sidebar's embedder and the head the catalog ships."""
    pre_spec, head_spec = embedders_to_compare(ctx.spec, ctx.catalog_dir)
    if ctx.location:  # an index opened as it is: only its own embedder
        return (ctx.index, ctx.embedder), None, "this index is opened as it is, so no other embedder is compared"
    try:
        pre_emb = get_embedder(pre_spec)
        pre = (index_for(ctx, pre_emb), pre_emb)
    except USER_ERRORS as e:
        return (ctx.index, ctx.embedder), None, f"the pretrained embedder {pre_spec} is not available ({e})"
    if head_spec is None:
        return pre, None, "this catalog ships no trained head and the sidebar's embedder is not one"
    try:
        emb = get_embedder(head_spec)
        return pre, (index_for(ctx, emb), emb), ""
    except USER_ERRORS as e:
        return pre, None, str(e).splitlines()[0] if str(e) else type(e).__name__


def umap_controls(prefix: str) -> UmapParams:
    """The map's settings in words; UMAP's own names (n_neighbors, min_dist, metric) behind the help icons."""
    a, b, c = st.columns(3)
    nn = a.slider(MAP_SETTINGS["nn"][0], 2, 100, 15, key=f"{prefix}_nn", help=MAP_SETTINGS["nn"][1])
    md = b.slider(MAP_SETTINGS["md"][0], 0.0, 1.0, 0.1, 0.05, key=f"{prefix}_md", help=MAP_SETTINGS["md"][1])
    metric = c.selectbox(MAP_SETTINGS["metric"][0], ["cosine", "euclidean", "correlation", "manhattan"],
                         key=f"{prefix}_metric", help=MAP_SETTINGS["metric"][1])
    return UmapParams(nn, md, metric)
