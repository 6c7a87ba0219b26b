"""Relevance feedback the shopper can see: thumbs votes per query (liked pinned on top, disliked hidden with an
undo), shared by the search page and the map (which shows the refined query)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.index import IndexBackend
from core.search.feedback import refine

VOTES, VOTES_FOR = "votes", "votes_for"


def votes() -> dict[str, int]:
    """product_id -> +1 (liked) / -1 (disliked) for the current query."""
    return st.session_state.setdefault(VOTES, {})


def vote(pid: str, value: int) -> None:
    """Toggle a vote (pressing a pressed thumb takes the vote back)."""
    v = votes()
    if v.get(pid) == value:
        v.pop(pid)
    else:
        v[pid] = value


def undo(pid: str) -> None:
    votes().pop(pid, None)


def reset_votes() -> None:
    st.session_state[VOTES] = {}


def forget_votes_on_new_query(key: tuple) -> None:
    """Feedback is about one query: a new query starts without votes."""
    if st.session_state.get(VOTES_FOR) != key:
        st.session_state[VOTES] = {}
        st.session_state[VOTES_FOR] = key


def refined_vector(index: IndexBackend, vector: np.ndarray, key: tuple) -> np.ndarray | None:
    """The query refined by the votes given on it (None when it has none)."""
    v = st.session_state.get(VOTES) or {}
    if not v or st.session_state.get(VOTES_FOR) != key:
        return None
    return refine(index, vector, v)


def summary(v: dict[str, int]) -> str:
    liked, disliked = sum(x > 0 for x in v.values()), sum(x < 0 for x in v.values())
    return f"refined by feedback ({liked} liked, {disliked} disliked)"
