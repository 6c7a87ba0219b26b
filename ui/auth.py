"""Signing in to edit (served mode): the token of ``VPS_ADMIN_TOKEN`` / ``st.secrets["admin_token"]``, compared in
constant time. In local mode editing needs no sign-in.

Wrong tries are limited per visitor (browser session): after each, that session waits longer before its next try
is checked (doubling, at most :data:`MAX_WAIT_S`). Across all sessions, wrong tries only slow every check down
(:func:`check_delay`, at most :data:`MAX_CHECK_DELAY_S`), never refuse it: whatever other sessions do, the right
token typed in a session of its own signs in after a bounded delay."""

from __future__ import annotations

import hmac
import math
import threading
import time

import streamlit as st

from ui.settings import admin_token, settings

SIGNED_IN = "vps_signed_in"
FREE_TRIES = 3  # wrong tries a session gets before it must wait
FIRST_WAIT_S, MAX_WAIT_S = 2.0, 60.0  # a session's wait after its wrong tries beyond FREE_TRIES: doubling, capped
CHECK_DELAY_S, MAX_CHECK_DELAY_S = 0.5, 3.0  # every check's delay; it grows with recent wrong tries server-wide
_WINDOW_S = 60.0
_fails: list[float] = []  # server-wide wrong tries in the last minute (they only slow checks down)
_fails_lock = threading.Lock()


def check_token(given: str, expected: str) -> bool:
    """Whether ``given`` is the (non-empty) ``expected`` token, in constant time."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def check_delay(now: float | None = None) -> float:
    """Seconds every check waits: :data:`CHECK_DELAY_S`, growing with the wrong tries of the last minute across
    all sessions, at most :data:`MAX_CHECK_DELAY_S`."""
    now = time.monotonic() if now is None else now
    with _fails_lock:
        _fails[:] = [t for t in _fails if now - t < _WINDOW_S]
        recent = len(_fails)
    return min(MAX_CHECK_DELAY_S, CHECK_DELAY_S * (1 + recent / 10))


def session_wait(fails: int) -> float:
    """Seconds a session waits after its ``fails``-th wrong try before its next try is checked."""
    return 0.0 if fails < FREE_TRIES else min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** (fails - FREE_TRIES))


def _sign_in() -> None:
    given = st.session_state.get("vps_token", "")
    st.session_state["vps_token"] = ""
    now = time.monotonic()
    left = st.session_state.get("vps_auth_until", 0.0) - now
    if left > 0:
        st.session_state["vps_auth_msg"] = f"Too many wrong tokens from this browser; try again in {math.ceil(left)} s."
        return
    time.sleep(check_delay(now))  # the same for a right and a wrong token
    if check_token(given, admin_token()):
        st.session_state[SIGNED_IN] = True
        st.session_state["vps_auth_msg"] = ""
        st.session_state["vps_auth_fails"] = 0
        return
    with _fails_lock:
        _fails.append(time.monotonic())
    fails = st.session_state.get("vps_auth_fails", 0) + 1
    st.session_state["vps_auth_fails"] = fails
    wait = session_wait(fails)
    st.session_state["vps_auth_until"] = time.monotonic() + wait
    st.session_state["vps_auth_msg"] = "Wrong token." + (f" Next try in {math.ceil(wait)} s." if wait else "")


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
