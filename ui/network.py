"""The sidebar's "pretrained / trained for this catalog" switch, for a catalog that ships a trained head beside
itself (the real-photo demo): one click between the network as it comes and the one trained for this catalog.
It sets the app's embedder, so Search, the map and the classifier page follow it."""

from __future__ import annotations

import streamlit as st

from core.embedding import DEFAULT_SPEC
from ui.links import TRAINED as TRAINED_LINK
from ui.state import AppState, app_state

PRETRAINED, TRAINED = "Pretrained", "Trained for this catalog"
KEY = "vps_network"
HELP = ("Pretrained: a network trained on everyday photos (ImageNet), used as it comes; photos of the same "
        "product need not be close for it. Trained for this catalog: the same network with a small head trained "
        "on this catalog's own shop photos (metric learning), so that photos of one product land close together. "
        "Both show in the Embedder list below.")


def adopt_typed_head(state: AppState, head: str | None) -> bool:
    """A link that names the catalog's own head (``trained``, or its spec typed) picks it as a choice, as the
    switch does. False when it names ``trained`` and the catalog ships no head (the name is dropped)."""
    typed = state.spec_typed.strip()
    if head and typed in (head, TRAINED_LINK):
        state.spec_typed, state.spec_choice = "", head
    elif typed == TRAINED_LINK:
        state.spec_typed = ""
        return False
    return True


def use_network(trained: bool, head: str) -> None:
    """Make the app's embedder the catalog's trained head (``trained``) or the pretrained default; the sidebar's
    embedder widgets are re-seeded. A widget callback: it runs before the next script run."""
    state = app_state()
    state.spec_typed = ""
    state.spec_choice = head if trained else DEFAULT_SPEC
    st.session_state["vps_spec"] = state.spec_choice
    st.session_state["vps_spec_custom"] = ""


def _switched(head: str) -> None:
    use_network(st.session_state.get(KEY) == TRAINED, head)


def network_switch(state: AppState, head: str | None) -> None:
    """Draw the switch when the catalog ships a head; it shows which of the two the app uses now."""
    if not head:
        return
    st.session_state[KEY] = TRAINED if (state.spec_choice == head and not state.spec_typed.strip()) else PRETRAINED
    st.radio("Network", [PRETRAINED, TRAINED], key=KEY, horizontal=True, on_change=_switched, args=(head,),
             help=HELP)
