"""How the app is run, chosen at start: *local* (one person on their own machine: any folder, editing open) or
*served* (strangers on a network: catalogs from an allow-list only, editing after signing in, bounded work).

Each setting is read from the environment, else ``st.secrets`` (``.streamlit/secrets.toml``), else a default:

- ``VPS_MODE`` / ``mode``: ``local`` or ``served``. Unset: *local* when the server listens on localhost only
  (``server.address`` is ``localhost``/``127.0.0.1``/``::1``, as ``.streamlit/config.toml`` sets it), *served*
  otherwise (``--server.address 0.0.0.0``, a LAN address, or unset, where Streamlit listens on every interface).
- ``VPS_ADMIN_TOKEN`` / ``admin_token``: the password that unlocks editing in served mode (none: no editing).
- ``VPS_CATALOG_ROOTS`` / ``catalog_roots``: the allow-list (see :mod:`core.index.allowlist`).
- ``VPS_INDEX`` / ``index``: index locations to open as they are (``milvus-lite:PATH``, ``*.db``,
  ``http(s)://host:19530[?collection=NAME]`` or an Annoy index folder), comma-separated; each is offered as a
  catalog ("Index: <location>", its catalog the index's own). Only the operator sets them, never a visitor.
- ``VPS_CACHE_MAX_INDEXES`` / ``cache_max_indexes``: cached indexes kept (served default 8, local: no limit).
- ``VPS_SEARCH_TIMEOUT`` / ``search_timeout``: seconds one search may take (default 30).
- ``VPS_SEARCH_WORKERS`` / ``search_workers``: searches run at once, shared by all sessions (default 2).

Every variable, its type and what it accepts is in :mod:`core.config.settings`; a bad value stops the app with one
line naming it, on the page and in the terminal (:func:`settings_ok`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.config import settings as core_settings
from core.config.settings import SettingError

LOCAL, SERVED = "local", "served"
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def secrets() -> dict[str, Any]:
    """``st.secrets`` as a plain dict, empty when there is no (readable) secrets file. Without one, Streamlit looks
    for the files again on every read: read it once for all the settings a run reads together."""
    try:
        return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except Exception:  # noqa: BLE001 - an unreadable secrets file: every setting in it is unset
        return {}


def setting(name: str, read: dict[str, Any] | None = None) -> Any:
    """The typed value of ``VPS_<NAME>``, else ``st.secrets[name]`` (``read``: as :func:`secrets` gave it), else its
    default (:mod:`core.config.settings`); :class:`SettingError` (one line) for a value it does not accept."""
    return core_settings.get(name, secrets() if read is None else read)


def mode_for(asked: str, address: str | None) -> str:
    """The mode asked for, else the one the listening address implies."""
    asked = asked.strip().lower()
    if asked in (LOCAL, SERVED):
        return asked
    if asked:
        raise SettingError(f"VPS_MODE={asked!r} is not accepted: use {core_settings.VARS['mode'].accepts}")
    host = (address or "").strip().lower()
    return LOCAL if host in LOOPBACK or host.startswith("127.") else SERVED


@dataclass(frozen=True)
class Settings:
    mode: str
    catalog_roots: str  # os.pathsep-separated; "" = the default roots
    indexes: tuple[str, ...]  # index locations opened as they are (``VPS_INDEX``)
    cache_max_indexes: int
    search_timeout_s: float
    search_workers: int
    max_upload_bytes: int

    @property
    def served(self) -> bool:
        return self.mode == SERVED


def settings() -> Settings:
    """The settings of this run (cheap: read on every run, so a changed environment applies at once); raises
    :class:`SettingError` for a bad value (:func:`settings_ok` shows it)."""
    read = secrets()
    mode = mode_for(core_settings.raw("mode", read) or "", st.get_option("server.address"))
    upload_mb = st.get_option("server.maxUploadSize") or 200
    keep = setting("cache_max_indexes", read)
    return Settings(
        mode=mode,
        catalog_roots=setting("catalog_roots", read),
        indexes=setting("index", read),
        cache_max_indexes=(8 if mode == SERVED else 0) if keep is None else keep,
        search_timeout_s=setting("search_timeout", read),
        search_workers=setting("search_workers", read),
        max_upload_bytes=min(int(upload_mb) * 1024 * 1024, setting("max_bytes", read)),
    )


def settings_ok() -> bool:
    """Whether every setting is accepted; else each bad one is one line on the page and in the terminal, and the
    page shows nothing else (called first on every run)."""
    lines = core_settings.problems(secrets())
    for line in lines:
        st.error(f"This server is misconfigured: {line}. Its operator must fix it and restart it.")
        if line not in _told:  # once in the terminal, not on every run of every session
            _told.add(line)
            print(f"visual-product-search: {line}", file=sys.stderr, flush=True)
    return not lines


_told: set[str] = set()


def admin_token() -> str:
    """The configured admin token ("" when none): never shown, only compared."""
    return setting("admin_token")
