"""The app's own navigation, whichever script Streamlit runs first."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def use_app_navigation() -> None:
    """Leave Streamlit's old multipage mode if this process started in it, and run again.

    A ``pages/`` folder beside ``app.py`` makes the server's first script run use Streamlit's own page list
    (``app.py`` labelled "app", or a page file run without ``app.py`` when the first visit is a page's link).
    ``st.navigation`` in ``app.py`` turns that mode off for the process; doing it here and rerunning at once
    means every user, the first one included, sees the pages ``app.py`` names.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
