"""Relevance feedback the shopper can see: thumbs votes per query (liked pinned on top, disliked hidden with an
undo), kept in the app state (so a link carries them) and shared by every page that shows the query's results
and by the map (which shows the refined query)."""

from __future__ import annotations

import numpy as np

from core.index import IndexBackend
from core.search.feedback import refine
from ui.state import app_state


def votes() -> dict[str, int]:
    """product_id -> +1 (liked) / -1 (disliked) for the current query."""
    return app_state().votes


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
    votes().clear()


def forget_votes_on_new_query(key: tuple) -> None:
    """Feedback is about one query: a new query starts without votes. Votes a link gave (no query yet) belong
    to the first query shown, the link's."""
    state = app_state()
    if state.votes_for is None:
        state.votes_for = key
    elif state.votes_for != key:
        state.votes.clear()
        state.votes_for = key


def refined_vector(index: IndexBackend, vector: np.ndarray, key: tuple) -> np.ndarray | None:
    """The query refined by the votes given on it (None when it has none)."""
    state = app_state()
    if not state.votes or state.votes_for not in (None, key):
        return None
    return refine(index, vector, state.votes)


def summary(v: dict[str, int]) -> str:
    liked, disliked = sum(x > 0 for x in v.values()), sum(x < 0 for x in v.values())
    return f"refined by feedback ({liked} liked, {disliked} disliked)"
