"""The Evaluation page: metrics of the chosen embedders side by side and the failure browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from ui.words import METRICS, embedder_name

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "5_Evaluation.py")
TINY = "open_clip:vps-tiny-vit:random"


@pytest.fixture
def colour_catalog(tmp_path):
    cat = tmp_path / "cat"
    (cat / "q").mkdir(parents=True)
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    for c in colours:
        Image.new("RGB", (48, 48), c).save(cat / f"{c}.png")
        img = Image.new("RGB", (48, 48), c)
        img.paste((255, 255, 255), (0, 0, 20, 48))  # a partial view
        img.save(cat / "q" / f"{c}.png")
    (cat / "catalog.csv").write_text("image,product_id,category\n"
                                     + "".join(f"{c}.png,{c},{'warm' if c in 'red yellow orange' else 'cold'}\n"
                                               for c in colours))
    (cat / "queries.csv").write_text("image,product_id\n" + "".join(f"q/{c}.png,{c}\n" for c in colours))
    return cat


def _open_page(catalog) -> AppTest:
    """The Evaluation page on ``catalog`` with the tiny random open_clip embedder, after its first run."""
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["vps_catalog"] = "Other folder…"
    at.session_state["vps_catalog_path"] = str(catalog)
    at.session_state["vps_spec_custom"] = TINY
    at.run()
    return at


def test_evaluation_page_compares_embedders_and_browses_misses(colour_catalog, tiny_clip):
    at = _open_page(colour_catalog)
    assert not at.exception
    assert at.selectbox(key="ev_queries").value == str(colour_catalog / "queries.csv")
    at.text_input(key="ev_extra").input("test-missing-spec")  # a bad spec is one error line, not a crash
    at.button(key="ev_run").click().run()
    assert not at.exception
    assert any("unknown embedder spec" in e.value for e in at.error)
    table = at.dataframe[0].value
    assert list(table.index) == [embedder_name(TINY)]
    assert {METRICS[k][0] for k in ("recall@1", "recall@5", "recall@10", "map@10", "n_queries")} <= set(table.columns)
    assert table.loc[embedder_name(TINY), "Photos tested"] == 6
    misses = 6 - round(table.loc[embedder_name(TINY), "Right product first"] * 6)
    if misses:
        assert at.number_input(key="ev_fail_i").max == misses
        assert any("expected" in m.value for m in at.markdown)
    else:
        assert at.success


def test_evaluation_page_category_label_adds_precision(colour_catalog, tiny_clip):
    (colour_catalog / "queries.csv").write_text(
        "image,category\n" + "".join(f"q/{c}.png,{'warm' if c in 'red yellow orange' else 'cold'}\n"
                                     for c in ["red", "green", "blue"]))
    at = _open_page(colour_catalog)
    at.selectbox(key="ev_label").select("category").run()
    at.button(key="ev_run").click().run()
    assert not at.exception
    assert METRICS["precision@10"][0] in at.dataframe[0].value.columns


def test_failure_details_and_category_precision(colour_catalog, tmp_path):
    from core.data.catalog import load_catalog
    from core.evaluation.evaluate import evaluate, failure_details
    from core.index.product_index import ProductIndex
    from tests.helpers import PixelEmbedder

    emb = PixelEmbedder()
    idx, _ = ProductIndex.build(load_catalog(colour_catalog), emb, tmp_path / "idx")
    q = tmp_path / "q.csv"
    Image.new("RGB", (48, 48), "red").save(tmp_path / "red.png")
    q.write_text("image,product_id,category\nred.png,blue,cold\n")  # a deliberate miss
    ev = evaluate(idx, emb, q)
    (f,) = failure_details(ev, idx)
    assert f.expected == "blue" and f.above[0][0] == "red" and f.expected_image.endswith("blue.png")
    assert f.rank is not None and len(f.above) == f.rank - 1 and f.expected_score < f.above[0][1]
    assert "precision@10" not in ev.metrics
    ev = evaluate(idx, emb, q, label="category")
    assert 0 <= ev.metrics["precision@10"] <= 1 and ev.metrics["n_queries"] == 1


def test_evaluation_page_ranking_matches_core_and_shows_maps(colour_catalog, tiny_clip):
    from core.evaluation.evaluate import evaluate
    from core.index.workspace import ensure_index

    at = _open_page(colour_catalog)
    assert at.radio(key="ev_rank").value == "static"  # the app's default search
    for rank in ("distance", "static"):
        at.radio(key="ev_rank").set_value(rank).run()
        at.button(key="ev_run").click().run()
        assert not at.exception
        want = evaluate(ensure_index(colour_catalog, tiny_clip), tiny_clip, colour_catalog / "queries.csv",
                        rank=rank).metrics
        got = at.dataframe[0].value.loc[embedder_name(TINY)]
        for k in ("recall@1", "recall@5", "map@10"):
            assert got[METRICS[k][0]] == pytest.approx(want[k])
    at.toggle(key="ev_maps").set_value(True).run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1
