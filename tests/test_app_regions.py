"""The box picker ("Find each product") as a person sees it (issue 26's small things): the whole photo at its
true height, every product's chip on lines that wrap, fewer result cards per row beside the wide query column,
and no finished bar left over when the box finder comes from the cache."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import TIMEOUT, errors, run, seeded_sample, start  # noqa: F401 - ``seeded_sample``: a fixture
from ui.regions import CHIPS_WRAP, PICKER_WIDTH

COLUMNS, WIDE_QUERY_COLUMNS = 5, 3  # pages/0_Search.py's cards per row, and beside the wide query column


@pytest.mark.slow
def test_the_picker_shows_the_whole_photo_and_every_chip(seeded_sample):  # noqa: F811 - the fixture
    at = start()
    at.toggle(key="find_products").set_value(True)
    run(at)
    assert not errors(at), errors(at)
    picker = next(c for c in at.get("component_instance") if "image_coordinates" in c.proto.component_name)
    width = json.loads(picker.proto.json_args)["width"]
    assert isinstance(width, int) and 0 < width <= PICKER_WIDTH  # a fixed width: the frame takes its true height
    chips = at.pills[0]
    n = int(chips.label.split(" ", 1)[0])
    assert n > 0 and len(chips.options) == n  # one chip per product found…
    assert any(CHIPS_WRAP in h.proto.body for h in at.html)  # …on lines that wrap, none hidden off the side
    weights = [round(c.weight, 3) for c in at.columns]
    assert weights.count(round(1 / WIDE_QUERY_COLUMNS, 3)) >= WIDE_QUERY_COLUMNS  # cards in rows of 3, not 5
    assert weights.count(round(1 / COLUMNS, 3)) < COLUMNS, weights  # (a 4:1 row has one fifth)


def _finder_twice():
    """A page that gets the box finder from the cache (its first fit counting three steps)."""
    import streamlit as st

    from ui.progress_bar import LazyBar
    from ui.regions import _region_searcher

    _region_searcher("root", "fingerprint", "spec", None, LazyBar("Learning to find products"))
    st.write("ready")


def test_a_cached_box_finder_leaves_no_finished_bar(monkeypatch):
    """Streamlit replays what a cached call drew: the bar is removed inside the call, so a later session (a cache
    hit) shows no bar stuck at 3/3."""
    import core.search.regions as regions
    from ui.regions import _region_searcher

    fits: list[int] = []

    class Finder:  # counts like the productness head's first fit
        def __init__(self, searcher, progress):
            fits.append(1)
            for i in range(4):
                progress(i, 3)

    monkeypatch.setattr(regions, "RegionSearcher", Finder)
    _region_searcher.clear()
    for _ in range(2):  # the first session fits, the second is a cache hit
        at = AppTest.from_function(_finder_twice, default_timeout=TIMEOUT)
        at.run()
        assert not at.exception and [m.value for m in at.markdown] == ["ready"]
        assert not at.progress  # no bar left over, neither after the fit nor replayed from the cache
    assert fits == [1]
    _region_searcher.clear()
