"""The app's navigation: its pages, in order, whichever script Streamlit runs first."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.pages_manager import PagesManager

#: (file, title, icon): the sidebar's navigation, in order; the first is the home page
PAGES = [
    ("pages/0_Search.py", "Search", ":material/image_search:"),
    ("pages/1_Catalog.py", "Catalog", ":material/inventory_2:"),
    ("pages/2_Embedding_map.py", "Embedding map", ":material/scatter_plot:"),
    ("pages/3_Classifier_vs_neighbours.py", "Classifier vs neighbours", ":material/call_split:"),
    ("pages/4_Why_these_results.py", "Why these results", ":material/help:"),
    ("pages/5_Evaluation.py", "Evaluation", ":material/monitoring:"),
]


def set_app_page_config() -> None:
    """The app's title, icon and layout (a page may set its own title after)."""
    st.set_page_config(page_title="Visual product search", page_icon="🔎", layout="wide")


def app_navigation() -> StreamlitPage:
    """The sidebar's list of the app's pages; returns the page the URL asks for."""
    return st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGES)])


def use_app_navigation() -> None:
    """Called first by every page: where Streamlit ran the page file itself, name the app's pages.

    A ``pages/`` folder beside ``app.py`` makes a server's first script run use Streamlit's old multipage mode:
    its own page list ("app" plus the files), and a page file run without ``app.py`` when the first visit is a
    page's link. Naming the app's pages here replaces that list for this user and ends that mode for the process.
    """
    if PagesManager.uses_pages_directory:
        set_app_page_config()  # before the navigation, as app.py does: the pages' icons never become the favicon
        app_navigation()
