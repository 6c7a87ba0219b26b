"""How the project's browser drivers (the browser benchmark, the load test, the end-to-end tests) launch headless
Chromium: the Debian browser (``$VPS_CHROMIUM`` overrides it; Playwright downloads none) and its flags."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("VPS_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
