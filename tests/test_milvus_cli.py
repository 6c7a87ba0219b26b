"""The CLI on a Milvus index (Milvus Lite, and the server ``VPS_MILVUS_URI`` names: ``.ci/with-milvus``), as a user
runs it: index, add, search (a range filter too), evaluate, remove, compact give the same top-10 products and
figures as the Annoy index of the sample catalog."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE
from tests.helpers import milvus_location

pytest.importorskip("milvus_lite")


def run(*args):
    p = subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["milvus-lite", "milvus-server"])
def test_milvus_index_matches_annoy(kind, tmp_path, sample_index, embedder):
    from core.embedding.query import embed_query
    from core.evaluation.evaluate import evaluate

    cat = tmp_path / "cat"
    shutil.copytree(SAMPLE, cat)
    rows = (cat / "catalog.csv").read_text().splitlines()
    (cat / "catalog.csv").write_text("\n".join(rows[:-6]) + "\n")  # the last products come with `add`
    uri = milvus_location(kind, tmp_path, "m")
    assert "indexed 237 products" in run("index", "--catalog", cat, "--out", uri)
    (cat / "catalog.csv").write_text("\n".join(rows) + "\n")
    assert "added 6 image(s); 240 products" in run("add", "--index", uri, "--catalog", cat)

    queries = sorted((SAMPLE / "queries").iterdir())[::15]
    got = json.loads(run("search", "--index", uri, *queries, "--k", "10", "--rank", "distance", "--json"))
    for q in queries:
        want = sample_index.search(embed_query(embedder, q).vector, 10, exact=True)[0]
        hits = got[str(q)]["hits"]
        assert [h["product_id"] for h in hits] == [h.product_id for h in want]
        assert [h["similarity"] for h in hits] == pytest.approx([h.similarity for h in want], abs=1e-4)
    ranged = json.loads(run("search", "--index", uri, *queries, "--k", "10", "--rank", "distance", "--where",
                            "price=20..70", "--json"))
    for q in queries:  # a range filter: the same products as Annoy's
        want = sample_index.search(embed_query(embedder, q).vector, 10, ["price=20..70"], exact=True)[0]
        assert [h["product_id"] for h in ranged[str(q)]["hits"]] == [h.product_id for h in want]
        assert len(want) == 10 and all(20 <= float(h.fields["price"]) <= 70 for h in want)
    m = json.loads(run("evaluate", "--index", uri, "--queries", SAMPLE / "queries.csv", "--rank", "distance",
                       "--json"))
    ref = evaluate(sample_index, embedder, SAMPLE / "queries.csv", rank="distance")
    assert m == pytest.approx({**ref.metrics, "n_queries": 120})

    gone = got[str(queries[0])]["hits"][0]["product_id"]
    assert "239 products" in run("remove", "--index", uri, gone)
    got = json.loads(run("search", "--index", uri, queries[0], "--where", "price<60", "--json"))[str(queries[0])]
    assert len(got["hits"]) == 10 and gone not in {h["product_id"] for h in got["hits"]}  # the default ranking
    assert all(float(h["fields"]["price"]) < 60 for h in got["hits"])
    assert "compacted: 239 products" in run("compact", "--index", uri)


@pytest.mark.parametrize("location, msg", [
    ("http://user:secret@db.example:19530", "error: put Milvus credentials in MILVUS_TOKEN"),
    ("milvus-lite:{tmp}/none.db", "error: no index in milvus-lite:"),
])
def test_bad_milvus_locations_are_one_line(tmp_path, location, msg):
    p = subprocess.run([sys.executable, "-m", "core", "remove", "--index", location.format(tmp=tmp_path), "P0001"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith(msg) and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()  # opening never creates a store
