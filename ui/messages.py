"""What every page says to a person: one-line errors (never a traceback), catalog text shown as text, and a
success message kept across a rerun."""

from __future__ import annotations

import streamlit as st

from core.config.store import StoreError
from core.data.catalog import CatalogError
from core.data.images import ImageError
from core.data.text import markdown
from core.index import IndexStateError
from ui.bounded import TooSlow

USER_ERRORS = (ValueError, CatalogError, ImageError, IndexStateError, StoreError, OSError, TooSlow)


def show_error(e: BaseException, note: str = "") -> None:
    """One clear line for the user, shown as text (messages quote catalog cells, file names, links); never a
    traceback."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    st.error(md(msg + note))


def md(text: object) -> str:
    """``text`` (catalog fields, file names) for Streamlit Markdown: shown as typed, never as markup, a link, an
    emoji or icon, nor reordered (:func:`core.data.text.markdown`)."""
    return markdown(text)


def flash(message: str | None = None) -> None:
    """Show (and forget) a success message set before a ``st.rerun()``; or set one with ``message``."""
    if message is not None:
        st.session_state["vps_flash"] = message
    elif msg := st.session_state.pop("vps_flash", None):
        st.success(msg)
