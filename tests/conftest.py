"""Shared fixtures: the default embedder and an index of the sample catalog, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# CI draws the same Hypothesis examples on every run (a red CI must be reproducible, and a new example found there
# would block a landing it has nothing to do with); a developer's run draws new ones. .ci/run sets the profile.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"
DATASETS = Path(os.environ.get("VPS_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Artefacts the app caches go to a temporary folder, never the developer's .cache; the app runs in local mode
    unless a test serves it (``tests/test_served.py``)."""
    os.environ["VPS_CACHE"] = str(tmp_path_factory.mktemp("vps-cache"))
    os.environ["VPS_MODE"] = "local"
    yield


#: daemon threads the app and the engine start (UMAP's compile, a searcher's preparation, an index's read pass)
BACKGROUND = ("umap-warm-up", "prepare-", "vectors-prefetch")


@pytest.fixture(scope="session", autouse=True)
def _background_work_ends_before_exit():
    """The run waits for the app's background threads at its end: a process that exits while one is inside
    compiled code (numba, torch) can crash at interpreter shutdown (SIGSEGV, SIGABRT), a red run whose tests all
    passed (seen on short runs that end during the Search page's UMAP warm-up)."""
    yield
    import threading
    import time

    deadline = time.monotonic() + 300
    for t in threading.enumerate():
        if t.daemon and t.name.startswith(BACKGROUND):
            t.join(max(0.0, deadline - time.monotonic()))


@pytest.fixture(scope="session")
def embedder():
    from core.embedding import load_embedder

    return load_embedder("efficientnet-lite0")


@pytest.fixture(scope="session")
def tiny_clip():
    from core.embedding import load_embedder

    return load_embedder("open_clip:vps-tiny-vit:random")


@pytest.fixture(scope="session")
def sample_catalog():
    from core.data.catalog import load_catalog

    return load_catalog(SAMPLE)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, sample_catalog, embedder):
    """The default-embedder index of the whole sample catalog (read-only: copy it before writing)."""
    from core.index.product_index import ProductIndex

    idx, _ = ProductIndex.build(sample_catalog, embedder, tmp_path_factory.mktemp("sample-index"))
    return idx


def dataset(name: str) -> Path:
    """Path of a shared dataset, or skip the test where it is absent (a user's machine)."""
    p = DATASETS / name
    if not p.is_dir():
        pytest.skip(f"dataset {name} not found at {p}")
    return p
