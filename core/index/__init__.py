"""Indexes of catalog vectors, behind one interface: :class:`IndexBackend` (Annoy in a folder, the default; Milvus
Lite or a server by location), opened or built by location with :func:`open_index` / :func:`build_index`.
Callers above this package see only these names; the backends' modules are imported by the factory."""

from core.index.backend import BuildReport, Hit, IndexBackend, row_scores
from core.index.factory import backend_for, build_index, open_index
from core.index.files import IndexStateError

__all__ = ["BuildReport", "Hit", "IndexBackend", "IndexStateError", "backend_for", "build_index", "open_index",
           "row_scores"]
