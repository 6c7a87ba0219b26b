"""The documents name only what exists: every project path (``core/search/engine.py``, ``tests/test_index.py``)
and dotted module (``core.search.calibration``) named in the README, BENCHMARKS.md or docs/, and every relative
link between them."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("core", "ui", "pages", "tests", "scripts", "docs", "sample_catalog", "demo_catalog", "benchmarks", ".ci")
PATH = re.compile(r"(?<![\w./-])((?:{})/[\w./-]*\w)".format("|".join(re.escape(t) for t in TOP)))
MODULE = re.compile(r"(?<![\w./])(core(?:\.\w+)+)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _exists_module(dotted: str) -> bool:
    """``core.a.b`` names a package, a module, or a name inside one (``core.embedding.load_embedder``)."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:n])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_path_and_module_exists(doc):
    text = doc.read_text()
    missing = sorted({p for p in PATH.findall(text) if not (ROOT / p.rstrip(".")).exists()
                      and not any(ch in p for ch in "*<")})
    missing += sorted({m for m in MODULE.findall(text) if not _exists_module(m)})
    assert not missing, f"{doc.name} names what does not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    links = [u for u in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", u)]
    broken = sorted({u for u in links if not (doc.parent / u).exists()})
    assert not broken, f"{doc.name} links to what does not exist: {broken}"
