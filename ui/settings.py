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
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

LOCAL, SERVED = "local", "served"
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def setting(name: str, default: str = "") -> str:
    """``$VPS_<NAME>``, else ``st.secrets[name]``, else ``default``."""
    env = os.environ.get(f"VPS_{name.upper()}")
    if env is not None and env.strip():
        return env.strip()
    try:
        value = st.secrets.get(name) if st.secrets.load_if_toml_exists() else None
    except Exception:  # noqa: BLE001 - no secrets file, or an unreadable one: the setting is unset
        value = None
    return str(value).strip() if value is not None else default


def mode_for(asked: str, address: str | None) -> str:
    """The mode asked for, else the one the listening address implies."""
    asked = asked.strip().lower()
    if asked in (LOCAL, SERVED):
        return asked
    if asked:
        raise ValueError(f"VPS_MODE={asked!r}: use 'local' or 'served'")
    host = (address or "").strip().lower()
    return LOCAL if host in LOOPBACK or host.startswith("127.") else SERVED


def _number(name: str, default: float) -> float:
    try:
        return float(setting(name, str(default)))
    except ValueError:
        return default


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
    """The settings of this run (cheap: read on every run, so a changed environment applies at once)."""
    mode = mode_for(setting("mode"), st.get_option("server.address"))
    from core.data.images import MAX_BYTES

    upload_mb = st.get_option("server.maxUploadSize") or 200
    return Settings(
        mode=mode,
        catalog_roots=setting("catalog_roots"),
        indexes=tuple(dict.fromkeys(loc.strip() for loc in setting("index").split(",") if loc.strip())),
        cache_max_indexes=int(_number("cache_max_indexes", 8 if mode == SERVED else 0)),
        search_timeout_s=max(1.0, _number("search_timeout", 30.0)),
        search_workers=max(1, int(_number("search_workers", 2))),
        max_upload_bytes=min(int(upload_mb) * 1024 * 1024, MAX_BYTES),
    )


def admin_token() -> str:
    """The configured admin token ("" when none): never shown, only compared."""
    return setting("admin_token")
