"""A link names the network, never a path on the server (issue 26): a person switches a catalog to the network
trained for it and shares the link; another opens it and gets the same network; a head trained in the app's cache
travels by its short name; a link whose head lies outside the app's folders is refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config.defaults import DEFAULT_SPEC
from tests.helpers import write_head
from tests.test_app import errors, run
from tests.test_app_state import APP, ROOT, TIMEOUT, cache  # noqa: F401 - ``cache`` is a fixture
from ui.links import TRAINED, link_spec, read_link_spec
from ui.network import KEY
from ui.network import TRAINED as TRAINED_CHOICE

BASE = "efficientnet-lite0:ms"
MS_DIM = 1904  # efficientnet-lite0:ms's vector size


def open_link(params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    at.query_params.update(params)
    return run(at)


def no_path_in_url(at: AppTest) -> bool:
    """No value of the URL names a folder of this server (the cache, a head by its absolute path)."""
    values = [x for v in at.query_params.values() for x in (v if isinstance(v, list) else [v])]
    return not any(os.environ["VPS_CACHE"] in x or "+head:/" in x for x in values)


@pytest.mark.slow
def test_a_shared_link_names_the_trained_network_not_a_folder(cache, tmp_path):  # noqa: F811 - the fixture
    shipped_dir = write_head(cache.parent / "head", BASE, MS_DIM)  # "mini" ships a head beside its catalog
    shipped = f"{BASE}+head:{shipped_dir.resolve()}"
    at = open_link({"catalog": "mini"})
    at.sidebar.radio(key=KEY).set_value(TRAINED_CHOICE)
    run(at)
    assert not errors(at), errors(at)
    assert at.session_state["vps_spec"] == shipped
    shown = at.sidebar.selectbox(key="vps_spec")
    assert "Trained for this catalog (head: mini)" in shown.options and not any("/" in o for o in shown.options)
    assert at.query_params["spec"] == TRAINED and no_path_in_url(at)

    other = open_link(dict(at.query_params))  # another person opens the link: the same network
    assert not errors(other) and other.session_state["vps_spec"] == shipped
    assert other.sidebar.radio(key=KEY).value == TRAINED_CHOICE

    tuned = write_head(Path(os.environ["VPS_CACHE"]) / "heads" / "mini" / "e2-queries", BASE, MS_DIM, seed=1)
    run(at)  # the list offers the new head
    at.sidebar.selectbox(key="vps_spec").set_value(f"{BASE}+head:{tuned}")  # a head trained in the app
    run(at)
    assert not errors(at), errors(at)
    assert at.query_params["spec"] == f"{BASE}+head:heads/mini/e2-queries" and no_path_in_url(at)
    assert "Trained head: e2-queries (on EfficientNet-Lite0, several scales)" in at.sidebar.selectbox(
        key="vps_spec").options
    again = open_link(dict(at.query_params))
    assert not errors(again) and again.session_state["vps_spec"] == f"{BASE}+head:{tuned}"

    outside = write_head(tmp_path / "outside-head", BASE, MS_DIM)
    (Path(os.environ["VPS_CACHE"]) / "heads" / "link").symlink_to(outside)
    for crafted in (f"{BASE}+head:../../outside-head", f"{BASE}+head:heads/../../../outside-head",
                    f"{BASE}+head:heads/link", f"{BASE}+head:heads/mini/no-such-head"):
        bad = open_link({"catalog": "mini", "spec": crafted})
        assert len(errors(bad)) == 1 and "this app does not have" in errors(bad)[0], (crafted, errors(bad))
        assert bad.session_state["vps_spec"] == DEFAULT_SPEC and bad.query_params["spec"] == DEFAULT_SPEC


@pytest.mark.slow
def test_a_link_to_the_trained_network_of_a_catalog_that_ships_none_says_so(cache):  # noqa: F811 - the fixture
    at = open_link({"catalog": "mini", "spec": TRAINED})
    assert errors(at) == ["This catalog ships no network trained for it; using the pretrained one."]
    assert at.session_state["vps_spec"] == DEFAULT_SPEC and at.query_params["spec"] == DEFAULT_SPEC


def test_link_names_round_trip_inside_the_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    head = write_head(tmp_path / "cache" / "heads" / "shop" / "e40", BASE, MS_DIM)
    spec = f"{BASE}+head:{head}"
    assert link_spec(spec) == f"{BASE}+head:heads/shop/e40" and read_link_spec(link_spec(spec)) == spec
    assert link_spec(spec, shipped=spec) == TRAINED and read_link_spec(TRAINED) == TRAINED
    assert link_spec(DEFAULT_SPEC) == DEFAULT_SPEC == read_link_spec(DEFAULT_SPEC)
    elsewhere = f"{BASE}+head:{write_head(tmp_path / 'mine', BASE, MS_DIM)}"  # typed by hand: kept as typed
    assert link_spec(elsewhere) == elsewhere == read_link_spec(elsewhere)
    for crafted in ("../mine", "heads/../../mine", "", "heads/shop", "heads/shop/e40/../../../mine"):
        assert read_link_spec(f"{BASE}+head:{crafted}") is None, crafted
