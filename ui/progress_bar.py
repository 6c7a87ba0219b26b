"""A page's progress bar for the progress contract (:mod:`core.config.progress`): ``bar(done, total)``."""

from __future__ import annotations

import streamlit as st


class LazyBar:
    """A progress bar that appears on the first tick (nothing shows when everything was cached); ``empty()``
    removes it. Inside an ``st.cache_resource`` call, empty it there too: a cache hit replays what the call drew."""

    def __init__(self, text: str):
        self.text, self.bar = text, None

    def __call__(self, i: int, n: int, what: str = "") -> None:
        if self.bar is None:
            self.bar = st.progress(0.0)
        self.bar.progress(min(1.0, i / max(n, 1)), text=f"{what or self.text} {i}/{n}…")

    def empty(self) -> None:
        if self.bar is not None:
            self.bar.empty()
