"""A page's first paint, drawn before anything heavy is imported or loaded (the model, the index): its title, the
catalog's name and a grey skeleton of the result cards, so that a first open is never a blank page. Imports only
Streamlit, the standard library and :mod:`ui.nav` (the app's pages and icons)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.nav import set_app_icons

STATE_KEY = "vps_app"  # ui.state's key (not imported here: ui.state loads the engine)
PAINTED = "vps_painted_"  # + a page's title: the caption its last run showed
CARD = ('<div style="border:1px solid rgba(49,51,63,.15);border-radius:.5rem;padding:.5rem;height:{h}px">'
        '<div style="background:rgba(49,51,63,.08);height:55%;border-radius:.25rem"></div>'
        '<div style="background:rgba(49,51,63,.08);height:10%;width:80%;margin-top:8%;border-radius:.25rem"></div>'
        '<div style="background:rgba(49,51,63,.06);height:8%;width:55%;margin-top:5%;border-radius:.25rem"></div>'
        '</div>')

#: the placeholders pulse while the page loads: something on screen moves before the first counter exists
PULSE = ("<style>@keyframes vps-pulse{0%,100%{opacity:.45}50%{opacity:1}}"
         ".vps-skeleton div div{animation:vps-pulse 1.4s ease-in-out infinite}</style>")


@dataclass
class Frame:
    """Where the page goes on drawing: ``status`` (loading, building), the query column ``left`` and the results
    column ``right`` whose ``skeleton`` the results replace."""

    title: str
    caption: DeltaGenerator
    status: DeltaGenerator
    left: DeltaGenerator
    right: DeltaGenerator
    skeleton: DeltaGenerator

    def describe(self, text: str) -> None:
        """Replace the caption (Markdown, escaped by the caller); the page's next runs show it from the start."""
        self.caption.caption(text)
        st.session_state[f"{PAINTED}{self.title}"] = text

    def shown(self) -> None:
        """The results are drawn: take the skeleton away (and draw none on the session's next runs)."""
        self.skeleton.empty()


def catalog_name() -> str:
    """The name of the catalog the session (or else the link) shows, as the sidebar names it."""
    state = st.session_state.get(STATE_KEY)
    key = getattr(state, "catalog", "") or st.query_params.get("catalog", "") or "sample"
    if not re.fullmatch(r"[\w.-]{1,80}", key):  # a folder path or an index location: named once it opens
        return "Catalog"
    workspace = sys.modules.get("core.index.workspace")  # loaded after a first run: the one naming rule
    if workspace is not None:
        return workspace.catalog_label(key)
    return "Sample catalog" if key == "sample" else f"Dataset: {key}"


def skeleton_html(cards: int = 10, columns: int = 5, height: int = 300) -> str:
    """Grey placeholder cards in a grid, the size the result cards will take (no catalog text in it)."""
    return (PULSE + f'<div class="vps-skeleton" style="display:grid;grid-template-columns:repeat({columns},1fr);'
            f'gap:1rem">' + CARD.format(h=height) * cards + "</div>")


def first_paint(title: str, *, cards: int = 10, note: str = "loading the model and the catalog…",
                wide_query: bool = False) -> Frame:
    """Draw the page's title, the catalog's name with ``note`` and (``cards`` > 0) a skeleton of the results;
    ``wide_query``: the query column takes 2/5 of the width instead of 1/4 (a photo to click products in)."""
    st.title(title)
    set_app_icons()
    caption = st.empty()
    before = st.session_state.get(f"{PAINTED}{title}")  # a later run: what the page said last time, no skeleton
    caption.caption(before or f"{catalog_name()} · {note}")
    status = st.container()
    left, right = st.columns([2, 3] if wide_query else [1, 3], gap="large")
    skeleton = right.empty()
    if cards and before is None:
        skeleton.markdown(skeleton_html(cards), unsafe_allow_html=True)
    return Frame(title, caption, status, left, right, skeleton)
