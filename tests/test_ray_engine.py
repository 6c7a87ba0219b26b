"""``index --engine ray`` as a user runs it: the same vectors as the plain path, and no process left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLE

pytest.importorskip("ray.data")


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (every process a command started inherits it)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes():
                found.append(int(env.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find leftover processes")
def test_ray_engine_gives_the_plain_vectors_and_ends_every_process(tmp_path, embedder):
    from core.data.catalog import load_catalog
    from core.embedding.batch import embed_sources
    from core.embedding.ray_engine import read_shards
    from core.index.factory import open_index

    cat = tmp_path / "cat"
    shutil.copytree(SAMPLE, cat)
    rows = (cat / "catalog.csv").read_text().splitlines()
    (cat / "images" / "broken.jpg").write_bytes(b"not an image")
    (cat / "catalog.csv").write_text("\n".join(rows[:49] + ["images/broken.jpg,P9999,Broken,mug,red,plain,1"]) + "\n")
    marker = f"VPS_RAY_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "VPS_RAY_TEST": marker.split("=")[1]}
    p = subprocess.run([sys.executable, "-m", "core", "index", "--catalog", cat, "--out", tmp_path / "idx",
                        "--engine", "ray", "--shards", tmp_path / "shards"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "indexed 24 products (48 images)" in p.stdout and "broken.jpg" in p.stderr
    assert _processes_with(marker) == []  # Ray's raylet, GCS and workers ended with the command

    catalog = load_catalog(cat)
    want, errors = embed_sources(embedder, [catalog.path(r) for r in catalog.rows])
    got, got_errors = read_shards(tmp_path / "shards", len(catalog.rows), embedder.dim)
    assert set(got_errors) == set(errors) == {len(catalog.rows) - 1}
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(open_index(tmp_path / "idx", embedder).vectors), want, atol=1e-6)
