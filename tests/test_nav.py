"""ui/nav.py patches one private Streamlit flag (no public API exists for it): why, and on which release."""

from __future__ import annotations

import streamlit
from streamlit.testing.v1 import AppTest

from ui.nav import PRIVATE_CHECKED_ON


def test_the_private_flag_is_checked_on_this_streamlit_release():
    release = ".".join(streamlit.__version__.split(".")[:2])
    assert release == PRIVATE_CHECKED_ON, (
        f"ui/nav.py reads PagesManager.uses_pages_directory and calls _navigation, checked on Streamlit "
        f"{PRIVATE_CHECKED_ON}; "
        f"check tests/test_nav.py on {release}, then update PRIVATE_CHECKED_ON and requirements.txt")


def test_the_repl_check_is_skipped_by_the_flag_streamlit_reads():
    """Streamlit's once-per-process REPL check (inspect.stack(), ~0.05 s of a fresh server's first paint) reads
    this private flag; importing the app's navigation sets it."""
    import inspect

    import streamlit.delta_generator as dg

    import ui.nav  # noqa: F401

    assert "_use_warning_has_been_displayed" in inspect.getsource(dg._maybe_print_use_warning)
    assert dg._use_warning_has_been_displayed is True


def _script() -> None:
    import streamlit as st
    from conftest import ROOT
    from streamlit.runtime.pages_manager import PagesManager

    import ui.nav

    pages = ui.nav.PAGES
    ui.nav.PAGES = [(str(ROOT / path), title, icon) for path, title, icon in pages]  # this script is elsewhere

    PagesManager.uses_pages_directory = True  # what a pages/ folder beside app.py sets
    plain = st.navigation([st.Page(lambda: None, title="a", default=True)])  # the public call alone...
    st.session_state["flag_after_public_call"] = PagesManager.uses_pages_directory
    PagesManager.uses_pages_directory = True
    try:
        ui.nav.app_navigation()  # ...and the app's, which never touches the mode
    finally:
        ui.nav.PAGES = pages
    st.session_state["flag_after_app_navigation"] = PagesManager.uses_pages_directory
    del plain


def test_the_app_navigation_never_changes_the_flag():
    """The reason: st.navigation switches the process out of the pages-folder mode that the page files rely on
    (a rerun would then run the pages another way and widgets lose their values); app_navigation leaves the
    process-wide flag alone at every moment, so no other session's run can read it mid-change."""
    at = AppTest.from_function(_script, default_timeout=60).run()
    assert not at.exception
    assert at.session_state["flag_after_public_call"] is False  # the reason: the public call ends the mode
    assert at.session_state["flag_after_app_navigation"] is True  # the app navigation leaves it


def _record_config_and_pages(monkeypatch) -> list:
    import ui.nav

    calls: list = []
    monkeypatch.setattr(ui.nav.st, "set_page_config", lambda **kw: calls.append(("favicon", kw.get("page_icon"))))
    monkeypatch.setattr(ui.nav.st, "Page", lambda path, title, icon, default: icon)
    monkeypatch.setattr(ui.nav, "_navigation", lambda pages, **kw: calls.append(("page icons", pages)))
    monkeypatch.setattr(ui.nav, "settings_ok", lambda: True)
    return calls


def test_a_fresh_servers_first_run_sets_the_icons_after_the_title(monkeypatch):
    """Before Streamlit's emoji table is loaded (a fresh server's first run), the favicon and the page list's icons
    wait for the page's title: never the page list's icons without the favicon (the frontend would make the open
    page's Material icon the favicon, fetched from the network)."""
    import sys

    import ui.nav

    calls = _record_config_and_pages(monkeypatch)
    monkeypatch.delitem(sys.modules, "streamlit.emojis", raising=False)
    ui.nav.set_app_page_config()
    ui.nav.app_navigation()
    assert calls == [("favicon", None), ("page icons", [None] * len(ui.nav.PAGES))]
    ui.nav.set_app_icons()  # the page's title is drawn
    assert calls[2:] == [("favicon", ui.nav.ICON), ("page icons", [icon for _, _, icon in ui.nav.PAGES])]
    ui.nav.set_app_icons()
    assert len(calls) == 4  # once a run


def test_later_runs_set_the_icons_at_once(monkeypatch):
    import sys

    import ui.nav

    calls = _record_config_and_pages(monkeypatch)
    monkeypatch.setitem(sys.modules, "streamlit.emojis", sys.modules["streamlit"])  # the table is loaded
    ui.nav.set_app_page_config()
    ui.nav.app_navigation()
    ui.nav.set_app_icons()
    assert calls == [("favicon", ui.nav.ICON), ("page icons", [icon for _, _, icon in ui.nav.PAGES])]
