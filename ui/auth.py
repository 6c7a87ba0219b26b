"""Signing in to edit (served mode): the token of ``VPS_ADMIN_TOKEN`` / ``st.secrets["admin_token"]``, compared in
constant time; failed tries are slowed down for the whole process. In local mode editing needs no sign-in."""

from __future__ import annotations

import hmac
import threading
import time

import streamlit as st

from ui.settings import admin_token, settings

SIGNED_IN = "vps_signed_in"
MAX_FAILS_PER_MINUTE = 10
_fails: list[float] = []
_fails_lock = threading.Lock()


def check_token(given: str, expected: str) -> bool:
    """Whether ``given`` is the (non-empty) ``expected`` token, in constant time."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _throttled() -> bool:
    now = time.monotonic()
    with _fails_lock:
        _fails[:] = [t for t in _fails if now - t < 60]
        return len(_fails) >= MAX_FAILS_PER_MINUTE


def _sign_in() -> None:
    given = st.session_state.get("vps_token", "")
    st.session_state["vps_token"] = ""
    if _throttled():
        st.session_state["vps_auth_msg"] = "Too many wrong tokens; wait a minute."
        return
    if check_token(given, admin_token()):
        st.session_state[SIGNED_IN] = True
        st.session_state["vps_auth_msg"] = ""
    else:
        with _fails_lock:
            _fails.append(time.monotonic())
        time.sleep(0.5)
        st.session_state["vps_auth_msg"] = "Wrong token."


def can_edit() -> bool:
    """Whether this session may change things on the server: always in local mode, signed in when served."""
    return not settings().served or bool(st.session_state.get(SIGNED_IN))


def sign_in_box() -> None:
    """Sidebar: sign in / out (served mode only)."""
    if not settings().served:
        return
    with st.sidebar:
        if st.session_state.get(SIGNED_IN):
            st.caption("Signed in: editing is on.")
            if st.button("Sign out", key="vps_sign_out"):
                st.session_state[SIGNED_IN] = False
                st.rerun()
            return
        if not admin_token():
            return
        with st.expander("Sign in to edit"):
            st.text_input("Admin token", type="password", key="vps_token", on_change=_sign_in)
            if msg := st.session_state.get("vps_auth_msg"):
                st.error(msg)


def edit_gate(what: str) -> bool:
    """True when editing is allowed; else one line says how to get it."""
    if can_edit():
        return True
    how = "sign in (sidebar) to do it" if admin_token() else "its operator has set no admin token"
    st.info(f"This server is shared: {what} needs an administrator — {how}.")
    return False
