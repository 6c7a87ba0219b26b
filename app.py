"""Visual product search: ``streamlit run app.py`` (http://localhost:8501).

The entry point names the pages (so the sidebar says "Search", not "app"); each page is a file under
``pages/`` whose ``main()`` renders it, and the engine in ``core`` does the work.
"""

from __future__ import annotations

import streamlit as st

from ui.nav import use_app_navigation

#: (file, title, icon): the sidebar's navigation, in order; the first is the home page
PAGES = [
    ("pages/0_Search.py", "Search", ":material/image_search:"),
    ("pages/1_Catalog.py", "Catalog", ":material/inventory_2:"),
    ("pages/2_Embedding_map.py", "Embedding map", ":material/scatter_plot:"),
    ("pages/3_Classifier_vs_neighbours.py", "Classifier vs neighbours", ":material/call_split:"),
    ("pages/4_Why_these_results.py", "Why these results", ":material/help:"),
    ("pages/5_Evaluation.py", "Evaluation", ":material/monitoring:"),
]


def main() -> None:
    st.set_page_config(page_title="Visual product search", page_icon="🔎", layout="wide")
    use_app_navigation()
    nav = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                         for i, (path, title, icon) in enumerate(PAGES)])
    nav.run()


main()
