"""Vectors prepared ahead (``python -m core prepare``): the sample's shipped ones are current (same embedder and
weights, same catalog), an index is built from them without embedding, and stale ones are never used."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.data.catalog import load_catalog
from core.index.prepared import prepared_path, prepared_vectors
from core.index.workspace import ensure_index
from tests.test_app_state import mini_catalog

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"


def test_the_shipped_sample_vectors_are_current(sample_index, embedder):
    """Rebuilt with ``python -m core prepare`` whenever the sample or the model changes: this fails until then."""
    vecs = prepared_vectors(load_catalog(SAMPLE), embedder)
    assert vecs is not None, f"stale or missing: run python -m core prepare (writes {prepared_path(SAMPLE, 'x')})"
    built = np.asarray(sample_index.vectors)
    assert vecs.shape == built.shape
    assert float(np.min(np.sum(vecs * built, axis=1))) > 0.999  # float16, the same vectors


def test_the_shipped_box_finding_head_is_current(sample_index, embedder):
    """The sample's productness head ships too (``prepare``); region search takes it instead of training one."""
    from core.search.region_head import head_path, prepared_head, productness_head
    from core.search.regions import maps_embedder

    backbone = maps_embedder(embedder)
    head = prepared_head(SAMPLE, load_catalog(SAMPLE).fingerprint(), backbone)
    assert head is not None, "stale or missing: run python -m core prepare"
    assert prepared_head(SAMPLE, "another catalog", backbone) is None
    if not head_path(sample_index, backbone).is_file():  # not trained by another test yet: taken as shipped
        assert np.array_equal(productness_head(sample_index, backbone).w5, head.w5)


def test_prepare_verb_then_index_without_embedding_and_stale_is_ignored(tmp_path, monkeypatch, embedder):
    cat = mini_catalog(tmp_path / "mini")
    p = subprocess.run([sys.executable, "-m", "core", "prepare", "--catalog", str(cat), "--no-regions"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "wrote the prepared vectors" in p.stdout and prepared_path(cat, embedder.spec).is_file()
    assert prepared_vectors(load_catalog(cat), embedder) is not None

    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    import core.index.backend as backend

    def no_embedding(*a, **k):
        raise AssertionError("an image was embedded although its vector was prepared")

    with monkeypatch.context() as m:
        m.setattr(backend, "embed_sources", no_embedding)
        idx = ensure_index(cat, embedder)
    assert len(idx) == 12 and idx.manifest["catalog_fingerprint"] == load_catalog(cat).fingerprint()

    rows = list(csv.DictReader(open(cat / "catalog.csv", newline="")))
    rows[0]["title"] = "changed"
    with open(cat / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert prepared_vectors(load_catalog(cat), embedder) is None  # the catalog changed: stale, not used
    prepared_path(cat, embedder.spec).write_bytes(b"not an npz")
    assert prepared_vectors(load_catalog(cat), embedder) is None  # unreadable: not used, no error
