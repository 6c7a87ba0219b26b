"""The heavy objects every page shares, cached: the embedder, the index (built once, with progress, and checked
against its catalog), the searcher; and the context a page works in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.data.catalog import load_catalog
from core.embedding import DEFAULT_SPEC, Embedder, load_embedder
from core.embedding.available import shipped_head_spec
from core.index import IndexBackend, IndexStateError, backend_for, open_index
from core.index.eviction import evict_indexes, touch
from core.index.workspace import ensure_index, index_dir_for, index_state
from core.search.engine import Searcher
from ui.auth import can_edit
from ui.settings import settings


@dataclass
class Context:
    catalog_dir: Path
    spec: str
    embedder: Embedder
    index: IndexBackend
    location: str = ""  # the index location opened as it is (``VPS_INDEX``); "" = the app's own index


@st.cache_resource(show_spinner="Loading the model…")
def get_embedder(spec: str) -> Embedder:
    return load_embedder(spec)


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_index(location: str, fingerprint: str, spec: str, _opened: IndexBackend | None = None) -> IndexBackend:
    """The index at ``location`` as of ``fingerprint``, kept with what it loaded (rows, vectors); ``_opened``:
    an index already opened at that fingerprint, kept as it is."""
    return _opened if _opened is not None else open_index(location, spec or None)


def current_generation_name(index_dir: Path) -> str:
    ptr = index_dir / "CURRENT"
    return ptr.read_text().strip() if ptr.is_file() else ""


def open_location(location: str, embedder: Embedder) -> IndexBackend:
    """The index at ``location`` (``VPS_INDEX``), opened as it is (never built here), cached by its fingerprint.
    An index built by another embedder is one line naming the embedder to pick."""
    gen = current_generation_name(Path(location).expanduser()) if backend_for(location) is IndexBackend else ""
    if gen:  # an Annoy folder names its generation without being opened
        idx = _load_index(location, gen, "")
    else:
        fresh = open_index(location)
        idx = _load_index(location, fresh.fingerprint, "", fresh)
    if idx.spec != embedder.spec:
        raise IndexStateError(f"index {location} was built with embedder {idx.spec}: pick that embedder in the "
                              "sidebar")
    idx.check_embedder(embedder)
    return idx


def index_for(ctx: Context, embedder: Embedder) -> IndexBackend:
    """The index of the context's catalog for ``embedder``: the context's own for its embedder, else the app's
    index of that catalog (built if needed)."""
    return ctx.index if embedder.spec == ctx.spec else get_index(ctx.catalog_dir, embedder)


def get_index(catalog_dir: Path, embedder: Embedder, *, recheck: bool = True) -> IndexBackend:
    """The index of this catalog and embedder: cached by generation; built with a progress bar if needed (served:
    by anyone for the default embedder, else by a signed-in administrator). The cache keeps the most recently
    used indexes (``VPS_CACHE_MAX_INDEXES``). An index whose files were damaged on disk since it was opened is
    checked again, and so rebuilt."""
    d = index_dir_for(catalog_dir, embedder.spec)
    state_key = ("vps_index_state", str(catalog_dir), embedder.spec, current_generation_name(d))
    if not st.session_state.get(state_key):
        state, reason = index_state(load_catalog(catalog_dir), embedder)
        if state != "ok":
            if settings().served and embedder.spec not in (DEFAULT_SPEC, shipped_head(catalog_dir)) and not can_edit():
                raise IndexStateError(f"this catalog has no index for {embedder.spec} on this server yet; "
                                      f"pick {DEFAULT_SPEC}, or sign in to build it")
            msg = "Building the search index" + (f" ({reason})" if state == "stale" else "") + "…"
            bar = st.progress(0.0, text=msg)
            ensure_index(catalog_dir, embedder, progress=lambda i, n: bar.progress(i / max(n, 1), text=msg))
            bar.empty()
        touch(d)
        evict_indexes(settings().cache_max_indexes, protect=(d,))
        state_key = ("vps_index_state", str(catalog_dir), embedder.spec, current_generation_name(d))
        st.session_state[state_key] = True
    idx = _load_index(str(d), current_generation_name(d), embedder.spec)
    if recheck and not idx.intact():  # a file was damaged on disk under it: check again (a rebuild)
        st.session_state.pop(state_key, None)
        return get_index(catalog_dir, embedder, recheck=False)
    return idx


@st.cache_resource(show_spinner=False, max_entries=4)
def _searcher(index_root: str, fingerprint: str, spec: str, _index: IndexBackend, _embedder: Embedder) -> Searcher:
    searcher = Searcher(_index, _embedder)
    searcher.prepare_in_background()  # attribute filters, fitted weights, calibration: once per index generation
    return searcher


def get_searcher(ctx: Context, *, wait: bool = True) -> Searcher:
    """The search entry point of the context's index (cached per index generation, shared read-only). Its
    attribute filters are prepared in the background from the first use; ``wait`` waits for them (spinner)."""
    return index_searcher(ctx.index, ctx.embedder, wait=wait)


def index_searcher(index: IndexBackend, embedder: Embedder, *, wait: bool = True) -> Searcher:
    """The search entry point of any index (cached per index generation, shared read-only)."""
    searcher = _searcher(str(index.root), index.fingerprint, embedder.spec, index, embedder)
    if wait and not searcher.ready:
        wait_prepared(searcher)
    return searcher


PREPARING = "Preparing the attribute filters (colour, learned heads; once per catalog)"


def wait_prepared(searcher: Searcher, where: DeltaGenerator | None = None) -> None:
    """Wait for the searcher's attribute filters with a bar (in ``where``) that moves with the preparation's true
    counts (:attr:`Searcher.preparation`: it runs in a thread of its own, so the bar is drawn from here)."""
    thread = searcher.prepare_in_background()
    slot = (where if where is not None else st).empty()
    while thread.is_alive():
        what, done, total = searcher.preparation.latest()
        slot.progress(min(done / total, 1.0) if total else 0.0,
                      text=f"{PREPARING}: {what}, {done} of {total}…" if total else f"{PREPARING}…")
        thread.join(0.25)
    slot.empty()


def shipped_head(catalog_dir: Path | None) -> str | None:
    """The spec of the trained head an offered catalog ships beside itself (the demo's), if any."""
    return shipped_head_spec(catalog_dir) if catalog_dir is not None else None
