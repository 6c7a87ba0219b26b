"""Progress a person sees (issue 26): after switching the sidebar to the network trained for the catalog, the
"attribute filters are being prepared" note comes with a bar that moves, counting true units of work (each
catalog picture, each labelled photo, each picture of other things)."""

from __future__ import annotations

import csv
import re

import pytest
from streamlit.elements.progress import ProgressMixin

from core.search.engine import COLOURS, OTHERS, QUERIES
from core.search.negatives import N_GENERATED, other_catalogs
from tests.helpers import write_head
from tests.test_app import errors, run
from tests.test_app_links import BASE, MS_DIM, open_link
from tests.test_app_state import cache  # noqa: F401 - ``cache`` is a fixture
from ui.caches import PREPARING
from ui.network import KEY
from ui.network import TRAINED as TRAINED_CHOICE

BAR = re.compile(rf"^{re.escape(PREPARING)}: (?P<what>.+), (?P<done>\d+) of (?P<total>\d+)…$")


@pytest.fixture
def bars(monkeypatch) -> list[tuple[float, str]]:
    """Every (value, text) a progress bar showed on the app's pages, in order."""
    shown: list[tuple[float, str]] = []
    original = ProgressMixin.progress

    def progress(self, value, text=None, *args, **kwargs):
        shown.append((float(value), str(text or "")))
        return original(self, value, text, *args, **kwargs)

    monkeypatch.setattr(ProgressMixin, "progress", progress)
    return shown


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_switching_the_network_shows_the_preparation_moving_with_true_counts(cache, bars):  # noqa: F811
    write_head(cache.parent / "head", BASE, MS_DIM)  # "mini" ships a head beside its catalog
    at = open_link({"catalog": "mini"})
    bars.clear()
    at.sidebar.radio(key=KEY).set_value(TRAINED_CHOICE)
    run(at)
    assert not errors(at), errors(at)
    seen = [(v, m) for v, t in bars if (m := BAR.match(t))]
    assert seen, [t for _, t in bars]
    products = {r["product_id"] for r in rows(cache / "catalog.csv")}
    true_totals = {COLOURS: len(rows(cache / "catalog.csv")), QUERIES: len(rows(cache / "queries.csv")),
                   OTHERS: N_GENERATED + sum(map(len, other_catalogs(cache, products).values()))}
    for value, m in seen:
        done, total = int(m["done"]), int(m["total"])
        assert total == true_totals[m["what"]] and 0 <= done <= total, m.group(0)
        assert value == pytest.approx(done / total)
    values = [v for v, _ in seen]
    assert len(set(values)) >= 2  # it moves
    others = [int(m["done"]) for _, m in seen if m["what"] == OTHERS]
    assert others == sorted(others)  # one stage only counts up
    assert not [i.value for i in at.info if "for now" in i.value]  # done: the page re-ranked by itself


def test_waiting_for_the_maps_first_compile_counts_its_steps():
    """The Embedding map's first drawing in a server process waits for UMAP's compile: the bar counts the
    warm-up's steps as it reports them (through :data:`core.explore.projection.WARM_UP`), naming each."""
    from core.explore.projection import WARM_UP, WARM_UP_STEPS
    from ui.explore import wait_for_warm_up

    report = WARM_UP.of("warm-up")

    class Warm:  # a warm-up thread that finishes a step each time it is waited on
        step = 0

        def is_alive(self) -> bool:
            return self.step < len(WARM_UP_STEPS)

        def join(self, timeout: float | None = None) -> None:
            self.step += 1
            report(self.step, len(WARM_UP_STEPS))

    report(0, len(WARM_UP_STEPS))
    shown: list[tuple[float, str]] = []
    wait_for_warm_up(Warm(), show=lambda value, text: shown.append((value, text)), tick=0)
    assert [v for v, _ in shown] == pytest.approx([0, 1 / 3, 2 / 3])
    assert [t.split(": ", 1)[1].split(", step")[0] for _, t in shown] == list(WARM_UP_STEPS)
    assert [re.search(r"step (\d) of 3", t)[1] for _, t in shown] == ["1", "2", "3"]


@pytest.mark.slow
def test_the_warm_up_reports_each_step():
    from core.explore.projection import WARM_UP_STEPS, warm_up

    seen: list[tuple[int, int]] = []
    warm_up(lambda done, total: seen.append((done, total)))
    assert seen == [(i, len(WARM_UP_STEPS)) for i in range(len(WARM_UP_STEPS) + 1)]
