"""Sidebar (catalog + embedder pickers), cached heavy objects and friendly errors for every page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.config.store import StoreError
from core.data.catalog import CatalogError, load_catalog
from core.data.images import ImageError
from core.embedding import DEFAULT_SPEC, Embedder, load_embedder
from core.index.product_index import IndexStateError, ProductIndex
from core.index.workspace import ensure_index, index_dir_for, index_state, known_catalogs
from core.search.engine import Searcher

USER_ERRORS = (ValueError, CatalogError, ImageError, IndexStateError, StoreError, OSError)
EMBEDDER_CHOICES = [DEFAULT_SPEC, "efficientnet-lite2", "open_clip:ViT-B-32:laion2b_s34b_b79k"]


@dataclass
class Context:
    catalog_dir: Path
    spec: str
    embedder: Embedder
    index: ProductIndex


@st.cache_resource(show_spinner="Loading the model…")
def get_embedder(spec: str) -> Embedder:
    return load_embedder(spec)


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_index(index_dir: str, generation: str, spec: str) -> ProductIndex:
    return ProductIndex.load(index_dir, spec)


def current_generation_name(index_dir: Path) -> str:
    ptr = index_dir / "CURRENT"
    return ptr.read_text().strip() if ptr.is_file() else ""


def get_index(catalog_dir: Path, embedder: Embedder) -> ProductIndex:
    """The index of this catalog and embedder: cached by generation; built with a progress bar if needed."""
    d = index_dir_for(catalog_dir, embedder.spec)
    state_key = ("vps_index_state", str(catalog_dir), embedder.spec, current_generation_name(d))
    if not st.session_state.get(state_key):
        state, reason = index_state(load_catalog(catalog_dir), embedder)
        if state != "ok":
            msg = "Building the search index" + (f" ({reason})" if state == "stale" else "") + "…"
            bar = st.progress(0.0, text=msg)
            ensure_index(catalog_dir, embedder, progress=lambda i, n: bar.progress(i / max(n, 1), text=msg))
            bar.empty()
        state_key = ("vps_index_state", str(catalog_dir), embedder.spec, current_generation_name(d))
        st.session_state[state_key] = True
    return _load_index(str(d), current_generation_name(d), embedder.spec)


@st.cache_resource(show_spinner="Preparing the attribute filters (colour, learned heads)…", max_entries=4)
def _searcher(index_root: str, fingerprint: str, spec: str, _index: ProductIndex, _embedder: Embedder) -> Searcher:
    searcher = Searcher(_index, _embedder)
    searcher.ranker  # noqa: B018 - built here, under the spinner, once per index generation
    return searcher


def get_searcher(ctx: Context) -> Searcher:
    """The search entry point of the context's index (cached per index generation, shared read-only)."""
    return index_searcher(ctx.index, ctx.embedder)


def index_searcher(index: ProductIndex, embedder: Embedder) -> Searcher:
    """The search entry point of any index (cached per index generation, shared read-only)."""
    return _searcher(str(index.root), index.fingerprint, embedder.spec, index, embedder)


def sidebar() -> Context | None:
    """Catalog and embedder pickers; returns None (after showing why) when nothing can be searched."""
    cats = known_catalogs()
    with st.sidebar:
        label = st.selectbox("Catalog", [*cats, "Other folder…"], key="vps_catalog")
        if label == "Other folder…":
            path = st.text_input("Catalog folder", key="vps_catalog_path", placeholder="/path/to/catalog")
            if not path:
                st.info("Type the path of a folder with catalog.csv, or of <category>/<image> folders.")
                return None
            catalog_dir = Path(path).expanduser()
        else:
            catalog_dir = cats[label]
        spec = st.selectbox("Embedder", EMBEDDER_CHOICES, key="vps_spec",
                            help="efficientnet-lite0 works offline; open_clip needs its weights downloaded once.")
        custom = st.text_input("…or an embedder spec", key="vps_spec_custom",
                               placeholder="efficientnet-lite0+head:/path/to/model")
        spec = custom.strip() or spec
    try:
        embedder = get_embedder(spec)
        index = get_index(catalog_dir, embedder)
    except USER_ERRORS as e:
        show_error(e)
        return None
    return Context(catalog_dir, spec, embedder, index)


def show_error(e: BaseException) -> None:
    """One clear line for the user; never a traceback."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    st.error(msg)


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumb(path: str, mtime: float, size: int) -> bytes | None:
    import io

    from core.data.images import open_image, thumbnail

    try:
        img = thumbnail(open_image(path, draft_size=size), size)
    except (ImageError, OSError):
        return None
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def thumbnail_bytes(path: str | Path, size: int = 256) -> bytes | None:
    """A cached JPEG thumbnail of an image file (None when it cannot be read)."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return None
    return _thumb(str(p), mtime, size)


def flash(message: str | None = None) -> None:
    """Show (and forget) a success message set before a ``st.rerun()``; or set one with ``message``."""
    if message is not None:
        st.session_state["vps_flash"] = message
    elif msg := st.session_state.pop("vps_flash", None):
        st.success(msg)
