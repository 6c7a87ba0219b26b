"""The "Why these results" page renders ranked results with contribution bars (no browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parent.parent / "pages" / "4_Why_these_results.py"


def test_why_page_static_and_distance(sample_index, embedder):
    from core.config.paths import SAMPLE_CATALOG
    from core.index.workspace import index_dir_for

    d = index_dir_for(SAMPLE_CATALOG, embedder.spec)
    if not d.exists():  # reuse the session's index instead of building another
        shutil.copytree(sample_index.root, d, ignore=shutil.ignore_patterns(".lock"))
    at = AppTest.from_file(str(PAGE), default_timeout=600).run()
    assert not at.exception and not at.error
    assert at.radio[0].value == "static"
    assert {s.label for s in at.slider} >= {"similarity", "pixel_colour", "pattern"}
    assert any("pixel_colour" in m.value for m in at.markdown)  # the query's predicted attributes
    assert len(at.get("plotly_chart")) == 10  # one contribution chart per result
    at.radio[0].set_value("distance").run()
    assert not at.exception and not at.error
    at.radio[0].set_value("dynamic").run()  # no trained model yet: a warning, not a traceback
    assert not at.exception and at.warning
