"""Where things live: the project root, the sample catalog, the shared datasets and the artefact cache."""

from __future__ import annotations

import re
from pathlib import Path

from core.config import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE_CATALOG = PROJECT_ROOT / "sample_catalog"
#: the real-photo demo: ``catalog/`` (the catalog folder), ``head/`` (a head trained on its shop photos), query CSVs
DEMO_ROOT = PROJECT_ROOT / "demo_catalog"
DEMO_CATALOG = DEMO_ROOT / "catalog"


def datasets_dir() -> Path:
    """The shared datasets (``VPS_DATASETS``; default ``../shared/datasets``)."""
    return settings.get("datasets")


def __getattr__(name: str) -> Path:
    if name == "DATASETS":  # read when asked for, not when this module is imported
        return datasets_dir()
    raise AttributeError(name)


def cache_dir() -> Path:
    """Root of cached artefacts (indexes, UMAP projections, trained heads); ``VPS_CACHE`` overrides."""
    return settings.get("cache")


def slug(s: str) -> str:
    """A short file-name-safe form of ``s``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")[:40] or "x"
