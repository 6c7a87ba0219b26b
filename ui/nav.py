"""The app's navigation: its pages, in order, whichever script Streamlit runs first."""

from __future__ import annotations

import sys
from contextvars import ContextVar

import streamlit as st
import streamlit.delta_generator as delta_generator  # its private flag: see PRIVATE_CHECKED_ON
from streamlit.commands.navigation import _navigation  # private: see PRIVATE_CHECKED_ON
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.pages_manager import PagesManager  # private: see PRIVATE_CHECKED_ON

from ui.heap import keep_collections_cheap
from ui.settings import settings_ok

#: the Streamlit release (major.minor) on which the private flag ``PagesManager.uses_pages_directory`` (read by
#: :func:`use_app_navigation`), the private ``_navigation`` (called by :func:`app_navigation`) and the private
#: ``delta_generator._use_warning_has_been_displayed`` (set below) were last checked (tests/test_nav.py fails on
#: another release until checked)
PRIVATE_CHECKED_ON = "1.67"

# Streamlit checks once per process, when the first element is drawn, whether it runs in a REPL (to print a warning
# for ``python app.py``): ``inspect.stack()``, which looks up the file of every loaded module, 0.05-0.07 s of a
# fresh server's first paint. The app runs under ``streamlit run`` (or AppTest): that warning is never due.
delta_generator._use_warning_has_been_displayed = True

#: True in a run whose favicon and page icons wait for its title (:func:`set_app_page_config`)
_ICONS_LATER: ContextVar[bool] = ContextVar("vps_set_app_icons", default=False)
ICON = "🔎"  # the app's favicon

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
    """The app's title, icon and layout (a page may set its own title after); then, when a setting has a value it
    does not accept, one line says which and the run stops there. (Every run passes here: the garbage collector's
    watch is installed on the first, :mod:`ui.heap`.)

    On a fresh server's first run the icons wait for the page's title (:func:`set_app_icons`): checking an
    emoji loads Streamlit's emoji table (a large regular expression: about 35 ms of CPU, 0.06-0.15 s of a
    first paint on a busy machine). Until then the page list has no icons either: the frontend makes the open
    page's icon the favicon when none is set, and a Material icon's comes from the network."""
    keep_collections_cheap()
    later = "streamlit.emojis" not in sys.modules
    _ICONS_LATER.set(later)
    st.set_page_config(page_title="Visual product search", page_icon=None if later else ICON, layout="wide")
    if not settings_ok():
        st.stop()


def app_navigation() -> StreamlitPage:
    """The sidebar's list of the app's pages; returns the page the URL asks for. Streamlit's old multipage mode
    (see :func:`use_app_navigation`) is kept as it is: ``st.navigation`` is ``_navigation`` after it ends that
    mode for the whole process, so that a rerun ran the pages another way than the run before and widgets lost
    their values between the two. Setting the mode back after the call was not enough: the flag is one for the
    process, and another session's run starting meanwhile read it mid-change (a person's pick then lost)."""
    icons = not _ICONS_LATER.get()
    return _navigation([st.Page(path, title=title, icon=icon if icons else None, default=i == 0)
                        for i, (path, title, icon) in enumerate(PAGES)], position="sidebar", expanded=False)


def set_app_icons() -> None:
    """The favicon and the page list's icons, where the run left them for later (:func:`set_app_page_config`).
    Every page calls it right after its title (the Catalog page, whose title waits for the catalog, at once)."""
    if _ICONS_LATER.get():
        _ICONS_LATER.set(False)
        st.set_page_config(page_icon=ICON)
        app_navigation()


def use_app_navigation() -> None:
    """Called first by every page: where Streamlit ran the page file itself, name the app's pages.

    A ``pages/`` folder beside ``app.py`` makes Streamlit run in its old multipage mode: its own page list
    ("app" plus the files), and a page's file run without ``app.py`` when the URL names that page. Naming the
    app's pages here replaces that list, so every user sees the pages ``app.py`` names. (Under app.py too: skipping
    it there, as a shortcut, broke the widgets' values in tests/test_app.py; the cause was not run down.)
    """
    if PagesManager.uses_pages_directory:
        set_app_page_config()  # before the navigation, as app.py does: the pages' icons never become the favicon
        app_navigation()
