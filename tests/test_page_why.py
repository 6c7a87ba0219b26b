"""The "Why these results" page renders ranked results with contribution bars (no browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui.messages import md

PAGE = Path(__file__).resolve().parent.parent / "pages" / "4_Why_these_results.py"


def test_why_page_static_and_distance(sample_index, embedder):
    from core.config.paths import SAMPLE_CATALOG
    from core.index.workspace import index_dir_for

    d = index_dir_for(SAMPLE_CATALOG, embedder.spec)
    if not d.exists():  # reuse the session's index instead of building another
        shutil.copytree(sample_index.root, d, ignore=shutil.ignore_patterns(".lock"))
    at = AppTest.from_file(str(PAGE), default_timeout=600).run()
    assert not at.exception and not at.error
    assert at.radio(key="why_rank").value == "static"
    assert at.selectbox(key="example").value.name == "q000_P0000.jpg"  # the app's current query (its first)
    assert {s.label for s in at.slider} >= {md("similarity"), md("pixel colour"), md("pattern")}  # names in words
    assert "pixel colour" in at.dataframe[0].value["Attribute"].tolist()  # the query's predicted attributes
    assert len(at.get("plotly_chart")) == 10  # one contribution chart per result
    at.radio(key="why_rank").set_value("distance").run()
    assert not at.exception and not at.error
    at.radio(key="why_rank").set_value("dynamic").run()  # no trained model yet: a warning, not a traceback
    assert not at.exception and at.warning
