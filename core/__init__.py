"""Visual product search engine: catalog -> embedder -> Annoy index -> search, explain, evaluate."""

__version__ = "0.1.0"
