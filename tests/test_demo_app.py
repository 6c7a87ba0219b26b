"""A person on the real-photo demo, headless (``AppTest``): picks it in the sidebar, searches its first example
photo, reads why the pretrained network misses it, switches to the network trained for this catalog with one click
(the photo's product comes first), switches back, visits another page and comes back."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config.defaults import DEFAULT_SPEC
from core.config.paths import DEMO_CATALOG, DEMO_ROOT
from core.embedding.available import shipped_head_spec
from tests.test_app_state import APP, PAGES, ROOT, TIMEOUT, page, results, run
from ui.network import KEY, PRETRAINED, TRAINED

DEMO = "Grocery shop photos (real)"


def first_example() -> tuple[str, str]:
    with open(DEMO_ROOT / "queries-examples.csv", newline="") as f:
        row = next(csv.DictReader(f))
    return Path(row["image"]).name, row["product_id"]


def note(at: AppTest) -> str:
    return next((w.value for w in at.warning if w.value.startswith("This photo is")), "")


@pytest.mark.slow
def test_a_person_compares_pretrained_and_trained_on_the_first_example(tmp_path, monkeypatch):
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    head = shipped_head_spec(DEMO_CATALOG)
    name, product = first_example()
    title = product.replace("-", " ")
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    run(at)
    assert KEY not in [r.key for r in at.sidebar.radio]  # the sample ships no head: no switch
    at.sidebar.selectbox(key="vps_catalog").set_value(DEMO)
    run(at)
    assert at.query_params["catalog"] == "demo" and at.selectbox(key="example").value.name == name
    assert at.sidebar.radio(key=KEY).value == PRETRAINED and at.session_state["vps_spec"] == DEFAULT_SPEC
    before = results(at)
    assert before and before[0][0] != product  # the first example is one the pretrained network misses...
    assert note(at).startswith(f"This photo is **{title}**; the pretrained network puts **")
    assert "The network trained for this catalog finds it" in note(at)

    at.button(key="vps_switch_trained").click()  # ... and the note's button fixes it
    run(at)
    assert at.sidebar.radio(key=KEY).value == TRAINED and at.session_state["vps_spec"] == head
    assert at.query_params["spec"] == "trained"  # a link names it, never its folder on the server
    assert results(at)[0][0] == product and not note(at)
    assert [s.value for s in at.success] == [f"This photo is **{title}**: the network trained for this catalog puts "
                                             "it first."]

    at.sidebar.radio(key=KEY).set_value(PRETRAINED)  # one click back
    run(at)
    assert at.session_state["vps_spec"] == DEFAULT_SPEC and [r[0] for r in results(at)] == [r[0] for r in before]
    at.sidebar.radio(key=KEY).set_value(TRAINED)
    run(at)
    page(at, PAGES[1])  # the map follows the sidebar's network, and so does coming back
    assert at.sidebar.radio(key=KEY).value == TRAINED and not at.error
    page(at, "pages/0_Search.py")
    assert at.sidebar.radio(key=KEY).value == TRAINED and results(at)[0][0] == product

    at.sidebar.selectbox(key="vps_catalog").set_value("Sample catalog")  # the demo's head stays with the demo
    run(at)
    assert at.session_state["vps_spec"] == DEFAULT_SPEC and KEY not in [r.key for r in at.sidebar.radio]


@pytest.mark.slow
def test_served_visitors_get_the_demo_and_its_trained_network_without_signing_in(tmp_path, monkeypatch):
    """Served with the default allow-list: the demo is offered, and a visitor (not signed in) switches to the
    network trained for it, whose index is built on first use (81 pictures), as the default embedder's is."""
    for k, v in {"VPS_MODE": "served", "VPS_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("VPS_CATALOG_ROOTS", raising=False)
    name, product = first_example()
    at = AppTest.from_file(str(ROOT / APP), default_timeout=600)
    at.query_params.update({"catalog": "demo"})
    run(at)
    assert at.sidebar.selectbox(key="vps_catalog").value == DEMO and not at.error
    at.sidebar.radio(key=KEY).set_value(TRAINED)
    run(at)
    assert not at.error and at.session_state["vps_spec"] == shipped_head_spec(DEMO_CATALOG)
    assert results(at)[0][0] == product
