"""Where things live: the project root, the sample catalog, the shared datasets and the artefact cache."""

from __future__ import annotations

import os
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE_CATALOG = PROJECT_ROOT / "sample_catalog"
#: the real-photo demo: ``catalog/`` (the catalog folder), ``head/`` (a head trained on its shop photos), query CSVs
DEMO_ROOT = PROJECT_ROOT / "demo_catalog"
DEMO_CATALOG = DEMO_ROOT / "catalog"
DATASETS = Path(os.environ.get("VPS_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets"))


def cache_dir() -> Path:
    """Root of cached artefacts (indexes, UMAP projections, trained heads); ``VPS_CACHE`` overrides."""
    return Path(os.environ.get("VPS_CACHE", PROJECT_ROOT / ".cache"))


def slug(s: str) -> str:
    """A short file-name-safe form of ``s``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")[:40] or "x"
