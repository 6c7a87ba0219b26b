"""Every ``VPS_*`` setting in one place: its name, type, default and what it accepts.

A setting is read when it is used (never when a module is imported), from the environment, else (an app setting)
from a mapping of secrets the caller passes (the app passes ``st.secrets``), else its default. A bad value raises
:class:`SettingError`, one line naming the variable and what it accepts; :func:`problems` lists every bad one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent.parent


class SettingError(ValueError):
    """A ``VPS_*`` variable (or secret) with a value it does not accept; the message is one line."""


@dataclass(frozen=True)
class Var:
    """One setting: ``VPS_<NAME>`` in the environment, ``<name>`` in the secrets."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    accepts: str
    secret: bool = False  # never quoted in a message
    app: bool = False  # an app setting: may also be given in the secrets (``.streamlit/secrets.toml``)

    @property
    def env(self) -> str:
        return f"VPS_{self.name.upper()}"


def _whole(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(s: str) -> int:
        v = int(s.replace("_", ""))
        if v < lo or (hi is not None and v > hi):
            raise ValueError(s)
        return v
    return parse


def _number(lo: float, hi: float) -> Callable[[str], float]:
    def parse(s: str) -> float:
        v = float(s)
        if not lo <= v <= hi:  # NaN fails too
            raise ValueError(s)
        return v
    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(s: str) -> str:
        if s.lower() not in allowed:
            raise ValueError(s)
        return s.lower()
    return parse


def _flag(s: str) -> bool:
    v = s.lower()
    if v not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(s)
    return v in ("1", "true", "yes", "on")


def _locations(s: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(loc.strip() for loc in s.split(",") if loc.strip()))


VARS: dict[str, Var] = {v.name: v for v in (
    Var("mode", _choice("local", "served"), "", "'local' or 'served' (unset: from the listening address)", app=True),
    Var("admin_token", str, "", "any text (the password that unlocks editing)", secret=True, app=True),
    Var("catalog_roots", str, "", f"folders separated by {os.pathsep!r}", app=True),
    Var("index", _locations, (), "index locations separated by ','", app=True),
    Var("cache", Path, _ROOT / ".cache", "a folder"),
    Var("datasets", Path, _ROOT.parent / "shared" / "datasets", "a folder"),
    Var("cache_max_indexes", _whole(0, 10_000), None, "a whole number from 0 (no limit) to 10000", app=True),
    Var("search_timeout", _number(1, 3600), 30.0, "a number of seconds from 1 to 3600", app=True),
    Var("search_workers", _whole(1, 64), 2, "a whole number from 1 to 64", app=True),
    Var("max_pixels", _whole(1), 64_000_000, "a whole number of pixels, at least 1"),
    Var("max_bytes", _whole(1), 50 * 1024 * 1024, "a whole number of bytes, at least 1"),
    Var("max_decoded_bytes", _whole(1), 128_000_000, "a whole number of bytes, at least 1"),
    Var("max_upload_decode_bytes", _whole(1), 32_000_000, "a whole number of bytes, at least 1", app=True),
    Var("backend", _choice("auto", "onnx", "torch"), "auto", "'auto', 'onnx' or 'torch'"),
    Var("no_mallopt", _flag, False, "1/true/yes/on or 0/false/no/off"),
)}


def raw(name: str, secrets: Mapping[str, Any] | None = None) -> str | None:
    """The text set for ``name`` (environment first, then ``secrets`` for an app setting), stripped; None when
    unset or blank."""
    var = VARS[name]
    value: Any = os.environ.get(var.env)
    if (value is None or not str(value).strip()) and secrets is not None and var.app:
        try:
            value = secrets.get(name)
        except Exception:  # noqa: BLE001 - an unreadable secrets file: the setting is unset
            value = None
    text = None if value is None else str(value).strip()
    return text or None


def get(name: str, secrets: Mapping[str, Any] | None = None) -> Any:
    """The typed value of setting ``name``; :class:`SettingError` (one line) when its value is not accepted."""
    var = VARS[name]
    text = raw(name, secrets)
    if text is None:
        return var.default
    try:
        return var.parse(text)
    except (ValueError, TypeError, OverflowError):
        shown = "(hidden)" if var.secret else repr(text[:40] + ("…" if len(text) > 40 else ""))
        raise SettingError(f"{var.env}={shown} is not accepted: use {var.accepts}") from None


def problems(secrets: Mapping[str, Any] | None = None) -> list[str]:
    """One line per setting whose value is not accepted (empty when all are)."""
    out = []
    for name in VARS:
        try:
            get(name, secrets)
        except SettingError as e:
            out.append(str(e))
    return out
