"""Signing in to edit (served mode): the token of ``VPS_ADMIN_TOKEN`` / ``st.secrets["admin_token"]``, compared in
constant time. In local mode editing needs no sign-in.

Wrong tries are limited three ways, and none of them ever refuses the right token for long:

- per browser session: after its wrong tries, that session's next try is refused unchecked for a while (doubling,
  at most :data:`MAX_WAIT_S`);
- per visitor address (``st.context.ip_address``): every try from an address with recent wrong tries waits before
  it is checked (doubling, at most :data:`MAX_WAIT_S`), so opening new sessions gives no fresh tries; a wait, never
  a refusal, so the right token from that address signs in within :data:`MAX_WAIT_S` whatever else it sends;
- server-wide: wrong tries only slow every check down (:func:`check_delay`, at most :data:`MAX_CHECK_DELAY_S`).

The right token typed in a session of its own thus signs in within :data:`MAX_CHECK_DELAY_S` from an address
with no wrong tries, and within :data:`MAX_CHECK_DELAY_S` + :data:`MAX_WAIT_S` from the attacker's own."""

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
ADDRESS_FREE_TRIES = 5  # wrong tries an address gets (over all its sessions) before its tries wait
ADDRESS_MEMORY_S = 15 * 60.0  # an address's wrong tries count for this long
MAX_ADDRESSES = 10_000  # addresses remembered at once (the oldest are forgotten first)


class AddressLimits:
    """Wrong tries per visitor address, shared by every session of the server (thread-safe, bounded in size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fails: dict[str, list[float]] = {}  # address -> its wrong tries' times, oldest first

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._fails.get(address, []) if now - t < ADDRESS_MEMORY_S]
        if times:
            self._fails[address] = times
        else:
            self._fails.pop(address, None)
        return times

    def wait(self, address: str, now: float | None = None) -> float:
        """Seconds a try from ``address`` waits before it is checked: 0 for its first
        :data:`ADDRESS_FREE_TRIES` wrong tries, then doubling from :data:`FIRST_WAIT_S`, at most :data:`MAX_WAIT_S`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            n = len(self._recent(address, now))
        return 0.0 if n < ADDRESS_FREE_TRIES else min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** (n - ADDRESS_FREE_TRIES))

    def wrong(self, address: str, now: float | None = None) -> None:
        """Count a wrong try from ``address``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(address, now)
            self._fails[address] = (times + [now])[-64:]  # enough to stay at the cap
            if len(self._fails) > MAX_ADDRESSES:  # forget the tenth whose last wrong try is oldest
                drop = len(self._fails) - MAX_ADDRESSES * 9 // 10
                for old in sorted(self._fails, key=lambda a: self._fails[a][-1])[:drop]:
                    del self._fails[old]


address_limits = AddressLimits()


def visitor_address() -> str:
    """The visitor's address as the server sees it (``"local"`` on loopback, where Streamlit gives none)."""
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 - no session context (bare mode)
        ip = None
    return ip if isinstance(ip, str) and ip else "local"


def _pause(seconds: float) -> None:
    time.sleep(seconds)


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
    address = visitor_address()
    _pause(address_limits.wait(address, now) + check_delay(now))  # the same for a right and a wrong token
    if check_token(given, admin_token()):
        st.session_state[SIGNED_IN] = True
        st.session_state["vps_auth_msg"] = ""
        st.session_state["vps_auth_fails"] = 0
        return
    with _fails_lock:
        _fails.append(time.monotonic())
    address_limits.wrong(address)
    fails = st.session_state.get("vps_auth_fails", 0) + 1
    st.session_state["vps_auth_fails"] = fails
    wait, slowed = session_wait(fails), address_limits.wait(address)
    st.session_state["vps_auth_until"] = time.monotonic() + wait
    st.session_state["vps_auth_msg"] = "Wrong token." + (f" Next try in {math.ceil(wait)} s." if wait else "") + (
        f" Too many wrong tokens from your address: each try now waits {math.ceil(slowed)} s before it is checked."
        if slowed else "")


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
