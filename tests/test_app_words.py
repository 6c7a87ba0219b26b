"""Words for the people who use it (issue 26): a retail stakeholder opens the Embedding map and evaluates the
catalog on the Evaluation page. What they read says what it means; the engine's own names (n_neighbors, UMAP 1,
map@10, n_queries, a head's folder on the server…) are only behind help icons."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.evaluate import evaluate
from core.explore.map_view import map_figure
from tests.test_app import errors, run
from tests.test_app_state import APP, ROOT, TIMEOUT, cache, page  # noqa: F401 - ``cache`` is a fixture
from ui.words import METRICS

JARGON = ("n_neighbors", "min_dist", "UMAP 1", "UMAP 2", "map@10", "mAP", "n_queries", "recall@", "precision@",
          "product_id", "+head:", "efficientnet-lite0:", "static", "distance", "epochs", "metric learning")
MAIN_JARGON = ("embedder spec", " head ")  # the sidebar keeps a field for an expert's spec; a page's text does not


def shown_text(at: AppTest, sidebar: bool = True) -> list[str]:
    """Everything a person reads on the page (not the help icons): text, widget labels and the options they show,
    table headers and rows' names, chart axis titles; ``sidebar``: with the sidebar's."""
    where = at if sidebar else at.main
    out = [e.value for kind in ("title", "header", "subheader", "caption", "markdown", "info", "warning",
                                "success", "error") for e in getattr(where, kind)]
    out += [m.label for m in where.metric]
    for kind in ("slider", "selectbox", "multiselect", "radio", "toggle", "button", "number_input", "text_input"):
        for w in getattr(where, kind):
            out.append(w.label)
            out += [str(o) for o in getattr(w, "options", [])]  # as format_func shows them
    for df in at.dataframe:
        out += [str(c) for c in df.value.columns] + [str(i) for i in df.value.index]
    for chart in at.get("plotly_chart"):
        layout = json.loads(chart.proto.spec).get("layout", {})
        out += [str((layout.get(a) or {}).get("title", {}).get("text") or "") for a in ("xaxis", "yaxis")]
    return out


def jargon_in(at: AppTest, sidebar: bool = True) -> list[str]:
    return [t for t in shown_text(at, sidebar) if any(j in t for j in JARGON)]


def helps(at: AppTest) -> str:
    return " ".join(w.help or "" for kind in ("slider", "selectbox", "radio")
                    for w in [*getattr(at, kind), *getattr(at.sidebar, kind)])


@pytest.mark.slow
def test_a_stakeholder_reads_the_map_and_the_evaluation_in_plain_words(cache):  # noqa: F811 - the fixture
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    at.query_params["catalog"] = "mini"
    run(at)
    assert not jargon_in(at), jargon_in(at)  # the search page, its sidebar's networks by name
    assert not [t for t in shown_text(at) if "efficientnet" in t]  # the network by its name, never its spec
    page(at, "pages/4_Why_these_results.py")
    assert not jargon_in(at), jargon_in(at)
    assert at.slider and not [s.label for s in at.slider if "_" in s.label]  # weights named in words
    assert "static" in helps(at)
    page(at, "pages/2_Embedding_map.py")
    assert not errors(at), errors(at)
    assert at.get("component_instance")  # the map is drawn
    labels = [s.label for s in at.slider]
    assert {"Neighbourhood size", "Spacing of points"} <= set(labels), labels
    assert not jargon_in(at), jargon_in(at)  # the sidebar's too: its networks by name
    assert "n_neighbors" in helps(at) and "min_dist" in helps(at)  # the technical term, behind the help icon
    assert "product" in at.selectbox(key="map_colour").options  # a column named product_id, in words

    page(at, "pages/5_Evaluation.py")
    at.button(key="ev_run").click()
    run(at)
    assert not errors(at), errors(at)
    assert not jargon_in(at, sidebar=False), jargon_in(at, sidebar=False)
    assert not [t for t in shown_text(at, sidebar=False) if any(j in f" {t} " for j in MAIN_JARGON)]
    assert "static" in helps(at) and "product_id" in helps(at)
    table = at.dataframe[0].value
    assert list(table.index) == ["Pretrained network (EfficientNet-Lite0)"]
    want = evaluate(*_index_and_embedder(cache), cache / "queries.csv", rank="static").metrics
    for key, (name, help_) in METRICS.items():  # each figure under its plain name is core's figure
        if key in want:
            assert table.iloc[0][name] == pytest.approx(want[key]), name
            assert key in help_.lower()
    assert table.iloc[0]["Photos tested"] == want["n_queries"] > 0


def _index_and_embedder(catalog):
    from core.embedding import load_embedder
    from core.index.workspace import ensure_index

    emb = load_embedder("efficientnet-lite0")
    index = ensure_index(catalog, emb)
    return index, emb


def test_a_map_has_no_axis_names_or_numbers():
    """UMAP's two directions have no units: the map shows closeness only (the app's map, and the plotly one)."""
    fig = map_figure([{"x": 0.0, "y": 1.0, "product_id": "P1", "category": "bag", "image": "a.jpg"}])
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.title.text is None and axis.showticklabels is False
    html = (ROOT / "ui" / "hover_map" / "index.html").read_text()
    assert "UMAP" not in html and "showticklabels: false" in html


CATALOG_JARGON = ("vector", "ompact", "catalog.csv", "index", "embedder", "Annoy", "delta", "hard-link", "product_id")


def test_a_stakeholder_reads_the_catalog_page_in_plain_words(cache):  # noqa: F811 - the fixture
    """The Catalog page (its overview, table, tabs and forms) says what things are for; the index's summary, the
    folder on the server, vectors and compacting are behind help icons."""
    at = AppTest.from_file(str(ROOT / APP), default_timeout=TIMEOUT)
    at.query_params["catalog"] = "mini"
    run(at)
    page(at, "pages/1_Catalog.py")
    assert not errors(at), errors(at)
    shown = shown_text(at, sidebar=False) + [t.label for t in at.tabs]
    assert [m.label for m in at.metric][:2] == ["Products", "Photos searched"]
    said = [t for t in shown if any(j in t for j in (*JARGON, *CATALOG_JARGON))]
    assert not said, said
    assert str(cache) not in " ".join(shown)  # no server folder in the main text
    behind = " ".join([m.proto.help for m in at.metric] + [c.proto.help for c in at.caption]
                      + [b.help or "" for b in at.button])
    assert "vectors" in behind and "ompact" in behind and "catalog.csv" in behind  # the technical words, on a help
    assert "product" in at.dataframe[0].value.columns and "product_id" not in at.dataframe[0].value.columns
