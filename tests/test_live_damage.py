"""No file on disk can crash the process: every file of a live index is truncated while a process searches it
(in a subprocess, so a signal such as SIGBUS from a memory-mapped read shows as a failed return code, not a dead
pytest). Every request gets a result or a one-line error, the damaged index is rebuilt, and searches go on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE

SPEC = "open_clip:vps-tiny-vit:random"

#: the app's request loop without the page: reopen (and so rebuild) an index that is no longer intact, then search
CHILD = r"""
import sys, time
from pathlib import Path
import numpy as np
from core.embedding import load_embedder
from core.index.workspace import ensure_index

catalog, log_path, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
log = open(log_path, "w", buffering=1)
emb = load_embedder(sys.argv[4])
idx = ensure_index(catalog, emb)
queries = np.asarray(idx.vectors[:8]).copy()
log.write(f"READY {idx.gen}\n")
after, i = 0, 0
while after < 20:
    try:
        if not idx.intact():  # a file was truncated under it: checked again, and rebuilt (what get_index does)
            idx = ensure_index(catalog, emb)
            log.write(f"REOPENED {idx.gen}\n")
        hits = idx.search(queries[i % 8], 5)[0]
        log.write(f"RESULT {len(hits)}\n")
        after += stop.exists()
    except (ValueError, OSError) as e:  # the app's user errors (IndexStateError, StoreError are among them)
        log.write(f"ERROR {type(e).__name__} {len(str(e).splitlines())} {str(e)[:300]!r}\n")
    i += 1
    time.sleep(0.002)
log.write("DONE\n")
"""


@pytest.mark.timeout(600)
def test_truncating_every_file_of_a_live_index_never_kills_the_searching_process(tmp_path):
    log, stop = tmp_path / "log.txt", tmp_path / "stop"
    env = {**os.environ, "VPS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(SAMPLE), str(log), str(stop), SPEC], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 400
        while not (log.exists() and "READY" in log.read_text()) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        gen = Path(log.read_text().split("READY ", 1)[1].splitlines()[0])
        time.sleep(0.3)  # searches running
        files = sorted(p for p in gen.iterdir() if p.is_file())
        assert {"vectors.npy", "annoy.ann", "items.json", "manifest.json"} <= {p.name for p in files}
        for p in files:  # what an operator's mistake does: the file rewritten in place, a few bytes long
            with open(p, "wb") as f:
                f.write(b"garbage")
            time.sleep(0.1)
        stop.touch()
        _, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = log.read_text().splitlines()
    assert proc.returncode == 0, f"the searching process died (rc {proc.returncode}): {err[-3000:]}"
    assert lines[-1] == "DONE"
    kinds = [ln.split()[0] for ln in lines[1:-1]]
    assert set(kinds) <= {"RESULT", "ERROR", "REOPENED"}
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    assert all(ln.split()[2] == "1" for ln in errors), errors  # each error is one line
    reopened = [ln.split()[1] for ln in lines if ln.startswith("REOPENED")]
    assert reopened and reopened[-1] != str(gen)  # the damaged index was rebuilt into a new generation
    assert kinds[-20:] == ["RESULT"] * 20  # and searches answer again
