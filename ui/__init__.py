"""Streamlit helpers shared by ``app.py`` and ``app_pages/``: they render and call ``core``, nothing more."""
