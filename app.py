"""Visual product search: ``streamlit run app.py`` (http://localhost:8501).

The entry point names the pages (so the sidebar says "Search", not "app"); each page is a file under
``pages/`` (listed in ``ui/nav.py``) whose ``main()`` renders it, and the engine in ``core`` does the work.
"""

from __future__ import annotations

from ui.nav import app_navigation, set_app_page_config


def main() -> None:
    set_app_page_config()
    app_navigation().run()


main()
