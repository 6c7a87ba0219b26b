"""Operator settings (``core/config/settings.py``): every ``VPS_*`` variable read when used, typed and validated; a
bad value is one line naming the variable and what it accepts, on the page and in the terminal, never a traceback
at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import settings
from core.config.settings import VARS, SettingError

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")

BAD = {  # variable -> values it must refuse
    "mode": ["servd", "public"],
    "search_workers": ["0", "-1", "abc", "1.5", "65"],
    "search_timeout": ["0", "-3", "nan", "inf", "soon"],
    "cache_max_indexes": ["-1", "many"],
    "max_pixels": ["abc", "0", "-5"],
    "max_bytes": ["1e6x", "0"],
    "max_decoded_bytes": ["lots"],
    "backend": ["cuda"],
    "no_mallopt": ["maybe"],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in BAD.items() for v in vs])
def test_a_bad_value_is_one_line_naming_the_variable_and_what_it_accepts(monkeypatch, name, value):
    monkeypatch.setenv(f"VPS_{name.upper()}", value)
    with pytest.raises(SettingError) as e:
        settings.get(name)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"VPS_{name.upper()}=") and VARS[name].accepts in msg
    assert settings.problems() == [msg]


def test_good_values_are_typed_and_unset_is_the_default(monkeypatch):
    for name in VARS:
        monkeypatch.delenv(f"VPS_{name.upper()}", raising=False)
    assert settings.problems() == []
    assert settings.get("search_workers") == 2 and settings.get("max_pixels") == 64_000_000
    monkeypatch.setenv("VPS_SEARCH_WORKERS", " 4 ")
    monkeypatch.setenv("VPS_MAX_PIXELS", "1_000_000")
    monkeypatch.setenv("VPS_MODE", "SERVED")
    monkeypatch.setenv("VPS_INDEX", "a.db, b.db,a.db")
    assert settings.get("search_workers") == 4 and settings.get("max_pixels") == 1_000_000
    assert settings.get("mode") == "served" and settings.get("index") == ("a.db", "b.db")
    monkeypatch.setenv("VPS_SEARCH_WORKERS", "")  # blank: unset
    assert settings.get("search_workers") == 2


def test_secrets_are_read_after_the_environment_and_never_quoted(monkeypatch):
    monkeypatch.delenv("VPS_SEARCH_WORKERS", raising=False)
    monkeypatch.delenv("VPS_ADMIN_TOKEN", raising=False)
    assert settings.get("search_workers", {"search_workers": 3}) == 3  # a TOML number
    monkeypatch.setenv("VPS_SEARCH_WORKERS", "5")
    assert settings.get("search_workers", {"search_workers": 3}) == 5
    assert settings.get("admin_token", {"admin_token": "s3cret"}) == "s3cret"
    with pytest.raises(SettingError) as e:
        settings.get("search_timeout", {"search_timeout": "soon"})
    assert "VPS_SEARCH_TIMEOUT='soon'" in str(e.value)
    assert settings.get("max_pixels", {"max_pixels": "big"}) == 64_000_000  # an engine setting: environment only
    assert "s3cret" not in "".join(settings.problems({"admin_token": "s3cret"}))


def test_nothing_is_read_at_import(tmp_path):
    """``VPS_MAX_PIXELS=abc`` once raised when core.data.images was imported: now importing works and opening an
    image says what is wrong in one line."""
    code = ("import core.data.images as m, core.config.paths as p, core.index.allowlist, core.embedding\n"
            "try:\n    m.open_image(b'x')\nexcept ValueError as e:\n    print('ERR', e)\n")
    env = {"PATH": "/usr/bin:/bin", "VPS_MAX_PIXELS": "abc", "VPS_SEARCH_WORKERS": "-1", "VPS_MODE": "servd",
           "VPS_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines() == [
        f"ERR VPS_MAX_PIXELS='abc' is not accepted: use {VARS['max_pixels'].accepts}"]


@pytest.mark.parametrize(("name", "value"), [("mode", "servd"), ("search_workers", "0"), ("search_workers", "-1"),
                                             ("max_pixels", "abc"), ("search_timeout", "x")])
def test_the_app_shows_a_bad_setting_in_one_line_on_the_page_and_in_the_terminal(monkeypatch, capfd, name, value):
    monkeypatch.setenv(f"VPS_{name.upper()}", value)
    monkeypatch.setattr("ui.settings._told", set())  # each line is printed once per process
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and f"VPS_{name.upper()}={value!r}" in errs[0] and VARS[name].accepts in errs[0]
    assert not at.get("selectbox")  # nothing else ran
    line = f"VPS_{name.upper()}={value!r} is not accepted"
    assert sum(line in x for x in capfd.readouterr().err.splitlines()) >= 1


def test_the_command_line_says_a_bad_setting_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VPS_MAX_PIXELS": "abc", "VPS_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "core", "search", "--index", str(tmp_path), "x.jpg"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: VPS_MAX_PIXELS='abc' is not accepted: use {VARS['max_pixels'].accepts}"]
