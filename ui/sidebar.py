"""The sidebar: the catalog, network and embedder pickers bound to the app state; and the words a page uses for
them."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import core.embedding
from core.embedding import DEFAULT_SPEC, Embedder
from core.index.allowlist import catalog_roots, catalogs_under
from core.index.workspace import SAMPLE_KEY, catalog_keys, catalog_label
from ui.auth import sign_in_box
from ui.caches import Context, get_embedder, get_index, open_location, shipped_head
from ui.messages import USER_ERRORS, md, show_error
from ui.network import adopt_typed_head, network_switch
from ui.settings import settings
from ui.state import EMBEDDER_CHOICES, AppState, app_state, bind, sync_url
from ui.words import embedder_name

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


def network_label(ctx: Context) -> str:
    """The embedder in a stakeholder's words: pretrained, trained for this catalog (the head it ships), or a trained
    head by its folder's name; never a path on this server."""
    if ctx.spec == DEFAULT_SPEC:
        return "pretrained network"
    if ctx.spec == shipped_head(ctx.catalog_dir):
        return "network trained for this catalog"
    return embedder_name(ctx.spec)


def describe(ctx: Context) -> str:
    """The line under a page's title: catalog, size and network."""
    return f"{md(key_label(app_state().catalog))} · {len(ctx.index)} products · {md(network_label(ctx))}"


def embedder_choices() -> list[str]:
    """Embedder specs the sidebar offers: what loads on this machine (``available_embedders``), else the fixed
    list."""
    try:
        specs = list(core.embedding.available_embedders().specs)
    except Exception:  # noqa: BLE001 - a failing probe must not take the sidebar down; the fixed list remains
        specs = []
    if settings().served:
        return specs or list(EMBEDDER_CHOICES[:2])
    return list(dict.fromkeys([*EMBEDDER_CHOICES, *specs]))


LINK_NOTE = "vps_link_note"


def link_notes(no_head: bool, refused: str, spec: str) -> None:
    """One line for the embedder a link named that the sidebar could not follow, shown until another network is
    picked (a page that reruns by itself keeps it)."""
    if no_head:
        st.session_state[LINK_NOTE] = ("This catalog ships no network trained for it; using the pretrained one.", spec)
    if refused:
        st.session_state[LINK_NOTE] = (f"The link names an embedder this app does not have ({md(repr(refused))}); "
                                       f"using {md(embedder_name(spec))}.", spec)
    note, for_spec = st.session_state.get(LINK_NOTE) or ("", "")
    if note and for_spec == spec:
        st.error(note)
    else:
        st.session_state.pop(LINK_NOTE, None)


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
    no_head = not adopt_typed_head(state, head)
    refused, state.refused_spec = state.refused_spec, ""
    choices = list(dict.fromkeys([*embedder_choices(), *([head] if head else [])]))
    with st.sidebar:
        link_notes(no_head, refused, state.spec_choice)
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
                st.error(f"Embedder {md(repr(wanted))} is not offered on this server; using "
                         f"{md(embedder_name(choices[0], head))}.")
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
            choices = list(dict.fromkeys([*embedder_choices(), *([head] if head else [])]))
        state.shipped_head = head or ""
        network_switch(state, head)
        if state.spec_choice not in choices:
            choices = [*choices, state.spec_choice]
        bind("vps_spec", state.spec_choice, choices.__contains__)
        state.spec_choice = st.selectbox("Network (embedder)", choices, key="vps_spec",
                                         format_func=lambda s: embedder_name(s, head),
                                         help="The embedder: the network that turns each picture into a vector. "
                                              "efficientnet-lite0 works offline; open_clip needs its weights on "
                                              "this machine; a trained head is metric learning on top of one.")
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
