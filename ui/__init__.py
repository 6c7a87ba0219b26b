"""Streamlit helpers shared by ``app.py`` and ``pages/``: they render and call ``core``, nothing more."""
