"""The Evaluation page opens on before and after (issue 26): on a catalog that ships a trained head, a person
opens the page and presses Evaluate: the pretrained network and the network trained for the catalog, side by side,
each with core's figures."""

from __future__ import annotations

import pytest

from core.config.defaults import DEFAULT_SPEC
from core.embedding import load_embedder
from core.evaluation.evaluate import before_after, evaluate
from core.index.workspace import ensure_index
from tests.helpers import write_head
from tests.test_app import errors, run
from tests.test_app_links import BASE, MS_DIM, open_link
from tests.test_app_state import cache, page  # noqa: F401 - ``cache`` is a fixture
from ui.words import METRICS


@pytest.mark.slow
def test_the_evaluation_page_opens_on_before_and_after(cache):  # noqa: F811 - the fixture
    shipped = f"{BASE}+head:{write_head(cache.parent / 'head', BASE, MS_DIM).resolve()}"
    at = open_link({"catalog": "mini"})
    page(at, "pages/5_Evaluation.py")
    assert at.multiselect(key="ev_specs").value == [DEFAULT_SPEC, shipped]
    at.button(key="ev_run").click()
    run(at)
    assert not errors(at), errors(at)
    table = at.dataframe[0].value
    assert list(table.index) == ["Pretrained network (EfficientNet-Lite0)", "Trained for this catalog (head: mini)"]
    for spec, (_, row) in zip([DEFAULT_SPEC, shipped], table.iterrows()):
        emb = load_embedder(spec)
        want = evaluate(ensure_index(cache, emb), emb, cache / "queries.csv", rank="static").metrics
        assert row[METRICS["recall@1"][0]] == pytest.approx(want["recall@1"])
        assert row[METRICS["map@10"][0]] == pytest.approx(want["map@10"])


def test_before_and_after_by_default(tmp_path):
    shop = tmp_path / "shop"
    (shop / "catalog").mkdir(parents=True)
    assert before_after(DEFAULT_SPEC, shop / "catalog") == [DEFAULT_SPEC]  # no head: the one network
    assert before_after("e+head:/m", shop / "catalog") == ["e", "e+head:/m"]  # a head: its base before it
    shipped = f"{BASE}+head:{write_head(shop / 'head', BASE, MS_DIM).resolve()}"
    assert before_after(DEFAULT_SPEC, shop / "catalog") == [DEFAULT_SPEC, shipped]
    assert before_after(shipped, shop / "catalog") == [DEFAULT_SPEC, shipped]
