"""Sidebar (catalog + embedder pickers, bound to the app state), cached heavy objects and friendly errors for
every page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import core.embedding
from core.config.store import StoreError
from core.data.catalog import CatalogError, load_catalog
from core.data.images import ImageError
from core.data.text import markdown
from core.embedding import DEFAULT_SPEC, Embedder, load_embedder
from core.embedding.available import shipped_head_spec
from core.index import IndexBackend, IndexStateError, backend_for, open_index
from core.index.allowlist import catalog_roots, catalogs_under
from core.index.eviction import evict_indexes, touch
from core.index.workspace import SAMPLE_KEY, catalog_keys, catalog_label, ensure_index, index_dir_for, index_state
from core.search.engine import Searcher
from ui.auth import can_edit, sign_in_box
from ui.bounded import TooSlow
from ui.network import adopt_typed_head, network_switch
from ui.settings import settings
from ui.state import EMBEDDER_CHOICES, AppState, app_state, bind, sync_url

USER_ERRORS = (ValueError, CatalogError, ImageError, IndexStateError, StoreError, OSError, TooSlow)
OTHER = "Other folder…"
INDEX_PREFIX = "index:"  # a catalog key naming an index location opened as it is (``VPS_INDEX``)


def offered_catalogs() -> dict[str, Path]:
    """Catalog key -> folder: served, only those under the allow-list; local, also the imports and any roots set."""
    s = settings()
    if s.served:
        return catalogs_under(catalog_roots(s.catalog_roots))
    extra = catalogs_under(catalog_roots(s.catalog_roots)) if s.catalog_roots else {}
    return catalog_keys() | {k: v for k, v in extra.items() if k not in catalog_keys()}


def offered_indexes(wanted: str = "") -> dict[str, str]:
    """Catalog key (``index:<location>``) -> index location, for the locations the operator set (``VPS_INDEX``);
    local, also ``wanted`` when it is such a key (a link naming an index). Served, only the operator's."""
    out = {INDEX_PREFIX + loc: loc for loc in settings().indexes}
    if wanted.startswith(INDEX_PREFIX) and wanted[len(INDEX_PREFIX):].strip() and not settings().served:
        out.setdefault(wanted, wanted[len(INDEX_PREFIX):].strip())
    return out


def key_label(key: str) -> str:
    """How the sidebar names a catalog key."""
    return f"Index: {key[len(INDEX_PREFIX):]}" if key.startswith(INDEX_PREFIX) else catalog_label(key)


def shipped_head(catalog_dir: Path | None) -> str | None:
    """The spec of the trained head an offered catalog ships beside itself (the demo's), if any."""
    return shipped_head_spec(catalog_dir) if catalog_dir is not None else None


def network_label(ctx: Context) -> str:
    """The embedder in a stakeholder's words: pretrained, trained for this catalog (the head it ships), or a trained
    head by its folder's name; never a path on this server."""
    spec = ctx.spec
    if spec == DEFAULT_SPEC:
        return "pretrained network"
    if spec == shipped_head(ctx.catalog_dir):
        return "network trained for this catalog"
    if "+head:" in spec:
        base, folder = spec.split("+head:", 1)
        return f"trained head {Path(folder).name!r} on {base}"
    return spec


def describe(ctx: Context) -> str:
    """The line under a page's title: catalog, size and network."""
    return f"{md(key_label(app_state().catalog))} · {len(ctx.index)} products · {md(network_label(ctx))}"


def embedder_choices() -> list[str]:
    """Embedder specs the sidebar offers: what loads on this machine where core can tell (``available_embedders``,
    not on every branch yet), else the fixed list."""
    avail = getattr(core.embedding, "available_embedders", None)
    try:
        specs = list(avail().specs) if avail else []
    except Exception:  # noqa: BLE001 - a failing probe must not take the sidebar down; the fixed list remains
        specs = []
    if settings().served:
        return specs or list(EMBEDDER_CHOICES[:2])
    return list(dict.fromkeys([*EMBEDDER_CHOICES, *specs]))


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
        with st.spinner("Preparing the attribute filters (colour, learned heads; once per catalog)…"):
            searcher.prepare_in_background().join()
    return searcher


def sidebar() -> Context | None:
    """Catalog and embedder pickers, bound to the app state (so every page shows the same catalog and
    embedder, and the URL names them); returns None (after showing why) when nothing can be searched.

    Served, the catalog is one of the allow-list's and the embedder one of those offered: a link naming
    anything else is refused in one line."""
    state = app_state()
    served = settings().served
    keys: dict[str, Path | None] = {**offered_catalogs()}
    indexes = offered_indexes(state.catalog)
    keys |= dict.fromkeys(indexes)  # an index's catalog folder is known once it is opened
    labels = {key_label(k): k for k in keys}
    options = [*labels] if served else [*labels, OTHER]
    head = shipped_head(keys.get(state.catalog))  # the catalog's own trained head (the demo's), offered too
    adopt_typed_head(state, head)
    choices = [*embedder_choices(), *([head] if head else [])]
    with st.sidebar:
        if served:
            if not keys:
                st.error("This server offers no catalog (see VPS_CATALOG_ROOTS).")
                return None
            if state.catalog not in keys:
                if state.catalog != SAMPLE_KEY:
                    st.error(f"Catalog {md(repr(state.catalog))} is not offered on this server; showing another.")
                state.catalog = next(iter(keys))
            if state.spec_typed or state.spec_choice not in choices:
                wanted = state.spec_typed or state.spec_choice
                st.error(f"Embedder {md(repr(wanted))} is not offered on this server; using {md(choices[0])}.")
                state.spec_typed, state.spec_choice, state.spec = "", choices[0], choices[0]
        bind("vps_catalog", key_label(state.catalog) if state.catalog in keys else OTHER, options.__contains__)
        label = st.selectbox("Catalog", options, key="vps_catalog")
        if label == OTHER:
            bind("vps_catalog_path", "" if state.catalog in keys else state.catalog, _is_str)
            state.catalog = st.text_input("Catalog folder", key="vps_catalog_path",
                                          placeholder="/path/to/catalog").strip()
        else:
            state.catalog = labels[label]
        if head != (new_head := shipped_head(keys.get(state.catalog))):  # another catalog, another head
            if head and state.spec_choice == head:  # a head trained for one catalog is not another's
                state.spec_choice = new_head or DEFAULT_SPEC
            head = new_head
            adopt_typed_head(state, head)
            choices = [*embedder_choices(), *([head] if head else [])]
        network_switch(state, head)
        if state.spec_choice not in choices:
            choices = [*choices, state.spec_choice]
        bind("vps_spec", state.spec_choice, choices.__contains__)
        state.spec_choice = st.selectbox("Embedder", choices, key="vps_spec",
                                         help="efficientnet-lite0 works offline; open_clip needs its weights on "
                                              "this machine.")
        if not served:
            bind("vps_spec_custom", state.spec_typed, _is_str)
            state.spec_typed = st.text_input("…or an embedder spec", key="vps_spec_custom",
                                             placeholder="efficientnet-lite0+head:/path/to/model")
        if not state.catalog:
            st.info("Type the path of a folder with catalog.csv, or of <category>/<image> folders.")
    sign_in_box()
    embedder = _state_embedder(state) if state.catalog else None
    sync_url(state)
    if embedder is None:
        return None
    location = indexes.get(state.catalog, "")
    try:
        if location:
            index = open_location(location, embedder)
            return Context(index.catalog_root, embedder.spec, embedder, index, location)
        catalog_dir = keys.get(state.catalog) or Path(state.catalog).expanduser()
        return Context(catalog_dir, embedder.spec, embedder, get_index(catalog_dir, embedder))
    except USER_ERRORS as e:
        show_error(e)
        return None


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
    """One clear line for the user, shown as text (messages quote catalog cells, file names, links); never a
    traceback."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    st.error(md(msg + note))


def md(text: object) -> str:
    """``text`` (catalog fields, file names) for Streamlit Markdown: shown as typed, never as markup, a link, an
    emoji or icon, nor reordered (:func:`core.data.text.markdown`)."""
    return markdown(text)


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
