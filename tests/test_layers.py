"""What import-linter cannot see: the pages (file names that are not module names) use the index only through
its interface, as core and ui do (the contract in pyproject.toml)."""

from __future__ import annotations

import re

from conftest import ROOT

BACKENDS = re.compile(r"^\s*(?:from|import)\s+core\.index\.(product_index|milvus_index)\b", re.M)


def test_pages_and_app_use_the_index_interface_only():
    offenders = [p.name for p in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
                 if BACKENDS.search(p.read_text())]
    assert not offenders, f"import core.index (IndexBackend, open_index, ...) instead, in {offenders}"
