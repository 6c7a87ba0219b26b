"""After a server restart (a fresh process, the cache warm), the Search page's first results need no torch: the
default embedder runs its cached ONNX model on numpy arrays, and torch (about a second to import) waits for what
truly needs it (training, a trained head, the torch backend, exporting the ONNX model on a cold cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_app import APP, TIMEOUT, seeded_sample  # noqa: F401 - the fixture puts the index in the app's cache

ROOT = Path(__file__).resolve().parent.parent
#: modules the first results must not import (torch and what is built on it)
TORCH_FAMILY = ("torch", "torchvision", "timm", "open_clip", "efficientnet_lite_pytorch")

PAGE_RUN = f"""
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file({APP!r}, default_timeout={TIMEOUT})
at.run(timeout={TIMEOUT})
print(json.dumps({{"exceptions": [e.value for e in at.exception],
                  "results": [c.value for c in at.caption if c.value.startswith("#")],
                  "imported": [m for m in {TORCH_FAMILY!r} if m in sys.modules]}}))
"""


def test_the_search_page_after_a_restart_imports_no_torch(seeded_sample, embedder):  # noqa: F811
    assert embedder.backend == "onnx", "the default embedder runs ONNX Runtime (onnxruntime is a requirement)"
    env = {k: v for k, v in os.environ.items() if k != "VPS_BACKEND"}  # the cache (VPS_CACHE) is the session's
    p = subprocess.run([sys.executable, "-c", PAGE_RUN], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=2 * TIMEOUT)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["exceptions"] == [] and got["results"], got  # the page searched its example photo and drew results
    assert got["imported"] == [], f"the Search page imported {got['imported']} after a restart"
