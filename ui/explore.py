"""Cached projection and disagreement report for the exploration pages (progress shown while computing)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.explore.disagreements import DisagreementReport, compare
from core.explore.projection import MAX_FIT, Projection, UmapParams, project, projection_dir
from core.index import IndexBackend

from .common import Context


@st.cache_resource(show_spinner=False, max_entries=6)
def _projection(root: str, fingerprint: str, params: UmapParams, _index: IndexBackend) -> Projection:
    n = int(_index.alive.sum())
    cached = (projection_dir(_index, params) / "CURRENT").exists()
    msg = ("Loading the cached map…" if cached else
           f"Projecting {n:,} images with UMAP (first time for these settings; cached afterwards)"
           + (f" — fitting on a random {MAX_FIT:,} and placing the rest" if n > MAX_FIT else "") + "…")
    bar = st.progress(0.0, text=msg)
    try:
        return project(_index, params, progress=lambda i, t: bar.progress(i / max(t, 1), text=msg))
    finally:
        bar.empty()


def get_projection(ctx: Context, params: UmapParams) -> Projection:
    return index_projection(ctx.index, params)


def index_projection(index: IndexBackend, params: UmapParams) -> Projection:
    """The (disk- and memory-cached) UMAP projection of any index."""
    return _projection(str(index.root), index.fingerprint, params, index)


@st.cache_resource(show_spinner=False, max_entries=6)
def _report(root: str, fingerprint: str, queries: str, qroot: str | None, label: str, stamp: float,
            _ctx: Context) -> DisagreementReport:
    bar = st.progress(0.0, text="Training the classifier and embedding the queries…")
    try:
        return compare(_ctx.index, _ctx.embedder, queries, label, root=qroot,
                       progress=lambda i, t: bar.progress(i / max(t, 1), text=f"Embedding queries {i}/{t}…"))
    finally:
        bar.empty()


def get_report(ctx: Context, queries: Path, label: str, root: Path | None = None) -> DisagreementReport:
    stamp = queries.stat().st_mtime if queries.exists() else 0.0
    return _report(str(ctx.index.root), ctx.index.fingerprint, str(queries), str(root) if root else None, label,
                   stamp, ctx)


def umap_controls(prefix: str) -> UmapParams:
    """n_neighbors / min_dist / metric widgets."""
    a, b, c = st.columns(3)
    nn = a.slider("n_neighbors", 2, 100, 15, key=f"{prefix}_nn",
                  help="Larger keeps more global structure; smaller shows finer local clusters.")
    md = b.slider("min_dist", 0.0, 1.0, 0.1, 0.05, key=f"{prefix}_md", help="How tightly points may pack.")
    metric = c.selectbox("metric", ["cosine", "euclidean", "correlation", "manhattan"], key=f"{prefix}_metric",
                         help="Search uses cosine similarity, so cosine matches it best.")
    return UmapParams(nn, md, metric)
