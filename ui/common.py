"""Sidebar (catalog + embedder pickers, bound to the app state), cached heavy objects and friendly errors for
every page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.config.store import StoreError
from core.data.catalog import CatalogError, load_catalog
from core.data.images import ImageError
from core.embedding import Embedder, load_embedder
from core.index.product_index import IndexStateError, ProductIndex
from core.index.workspace import catalog_keys, catalog_label, ensure_index, index_dir_for, index_state
from core.search.engine import Searcher
from ui.state import EMBEDDER_CHOICES, AppState, app_state, bind, sync_url

USER_ERRORS = (ValueError, CatalogError, ImageError, IndexStateError, StoreError, OSError)
OTHER = "Other folder…"


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
    """Catalog and embedder pickers, bound to the app state (so every page shows the same catalog and
    embedder, and the URL names them); returns None (after showing why) when nothing can be searched."""
    state = app_state()
    keys = catalog_keys()
    labels = {catalog_label(k): k for k in keys}
    options = [*labels, OTHER]
    with st.sidebar:
        bind("vps_catalog", catalog_label(state.catalog) if state.catalog in keys else OTHER, options.__contains__)
        label = st.selectbox("Catalog", options, key="vps_catalog")
        if label == OTHER:
            bind("vps_catalog_path", "" if state.catalog in keys else state.catalog, _is_str)
            state.catalog = st.text_input("Catalog folder", key="vps_catalog_path",
                                          placeholder="/path/to/catalog").strip()
        else:
            state.catalog = labels[label]
        bind("vps_spec", state.spec_choice, EMBEDDER_CHOICES.__contains__)
        state.spec_choice = st.selectbox("Embedder", EMBEDDER_CHOICES, key="vps_spec",
                                         help="efficientnet-lite0 works offline; open_clip needs its weights "
                                              "downloaded once.")
        bind("vps_spec_custom", state.spec_typed, _is_str)
        state.spec_typed = st.text_input("…or an embedder spec", key="vps_spec_custom",
                                         placeholder="efficientnet-lite0+head:/path/to/model")
        if not state.catalog:
            st.info("Type the path of a folder with catalog.csv, or of <category>/<image> folders.")
    embedder = _state_embedder(state) if state.catalog else None
    sync_url(state)
    if embedder is None:
        return None
    catalog_dir = keys.get(state.catalog) or Path(state.catalog).expanduser()
    try:
        index = get_index(catalog_dir, embedder)
    except USER_ERRORS as e:
        show_error(e)
        return None
    return Context(catalog_dir, embedder.spec, embedder, index)


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _state_embedder(state: AppState) -> Embedder | None:
    """The embedder the sidebar asks for; when it cannot be loaded, one line says so and the last spec that
    loaded (the default at first) is used instead."""
    wanted = state.spec_typed.strip() or state.spec_choice
    try:
        embedder = get_embedder(wanted)
    except USER_ERRORS as e:
        if wanted == state.spec:
            show_error(e)
            return None
        show_error(e, f" — still using {state.spec}")
        try:
            return get_embedder(state.spec)
        except USER_ERRORS as e2:
            show_error(e2)
            return None
    state.spec = wanted
    return embedder


def show_error(e: BaseException, note: str = "") -> None:
    """One clear line for the user; never a traceback."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    st.error(msg + note)


def md(text: object) -> str:
    """``text`` (catalog fields, file names) escaped for Streamlit Markdown: shown as typed, never as markup."""
    return re.sub(r"([\\`*_\[\]{}<>#|~$!:])", r"\\\1", str(text)).replace("\n", " ")


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
