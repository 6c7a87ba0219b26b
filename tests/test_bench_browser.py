"""The ``browser`` benchmark section: its driver (``scripts/bench_browser.py``) answers ``--help`` without a
browser, and the section tabulates the driver's figures against their goals, with the load average."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_driver_explains_itself():
    p = subprocess.run([sys.executable, "scripts/bench_browser.py", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "--shots" in p.stdout and "Chromium" in p.stdout


def test_the_section_tabulates_each_figure_against_its_goal(monkeypatch):
    import benchmarks.browser as section

    out = {"load_at_start": [3.0, 2.0, 1.0], "load_at_end": [4.0, 2.5, 1.2], "cpus": 2, "rows": [
        {"step": "first open, fresh cache", "figure": "first paint", "seconds": 0.6, "goal": 1.0},
        {"step": "first open, fresh cache", "figure": "first result", "seconds": None, "goal": 10.0},
        {"step": "first open, fresh cache", "figure": "settled", "seconds": 14.2, "goal": None}]}

    def fake_run(cmd, **kw):
        assert cmd[1].endswith("bench_browser.py") and "--restarts" in cmd
        return subprocess.CompletedProcess(cmd, 0, stdout="progress…\n" + json.dumps(out) + "\n", stderr="")

    monkeypatch.setattr(section.subprocess, "run", fake_run)
    t = section.bench_browser()
    assert [r[2:] for r in t.rows] == [["0.600", "1.000", "yes"], ["not reached", "10.0", "NO"], ["14.2", "", ""]]
    assert "[3.0, 2.0, 1.0]" in t.notes[0] and "2 CPUs" in t.notes[0]


def test_the_first_paint_parts_are_read_from_streamlits_messages():
    """The driver finds, among the server's messages until the title, when the script run started and when the
    title's heading arrived (the steps of the first paint it reports)."""
    import base64

    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_browser

    def sent(t: float, build) -> tuple[float, str]:
        msg = ForwardMsg()
        build(msg)
        return t, base64.b64encode(msg.SerializeToString()).decode()

    msgs = [sent(10.0, lambda m: m.session_status_changed.SetInParent()),
            sent(12.5, lambda m: m.new_session.SetInParent()),
            sent(20.0, lambda m: m.page_config_changed.SetInParent()),
            sent(31.0, lambda m: m.delta.new_element.markdown.SetInParent()),
            sent(42.0, lambda m: setattr(m.delta.new_element.heading, "body", "Visual product search"))]
    assert bench_browser.script_steps(msgs) == (12.5, 42.0)
    assert bench_browser.script_steps(msgs[:3]) == (12.5, None)
    assert bench_browser.median_of([{"a": 1.0}, {"a": None}, {"a": 3.0}]) == {"a": 3.0}
