"""Weight arithmetic, explanations that add up, per-filter retrieval, and a dynamic ranker that adapts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.search.dynamic_ranker import (
    TrainingQuery,
    WeightNet,
    dynamic_weights,
    load_model,
    save_model,
    train_weightnet,
)
from core.search.ranking import (
    SIMILARITY,
    Candidates,
    Ranker,
    RankingError,
    load_presets,
    parse_weights,
    save_preset,
    weight_vector,
)

DIMS = [SIMILARITY, "colour", "pattern"]


def _cand(features, products=None, qa=None) -> Candidates:
    f = np.asarray(features, float)
    return Candidates(DIMS, products or [f"p{i}" for i in range(len(f))], f, list(range(len(f))), qa or {})


class _FakeIndex:
    products: dict = {}

    def image_path(self, i):
        return f"img{i}.jpg"


def _ranker() -> Ranker:
    r = Ranker.__new__(Ranker)
    r.index, r.dims = _FakeIndex(), DIMS
    return r


def test_parse_weights():
    assert parse_weights("colour=2, pattern=1", DIMS) == {"colour": 2.0, "pattern": 1.0}
    assert parse_weights("", DIMS) == {}
    for bad in ("colour", "colour=x", "colour=nan", "size=1"):
        with pytest.raises(RankingError):
            parse_weights(bad, DIMS)


def test_weight_vector_defaults():
    np.testing.assert_array_equal(weight_vector({"colour": 2}, DIMS), [1, 2, 0])  # similarity stays 1
    np.testing.assert_array_equal(weight_vector({SIMILARITY: 0, "pattern": 3}, DIMS), [0, 0, 3])


def test_weighted_sum_and_contributions():
    cand = _cand([[0.9, 0.0, 1.0], [0.6, 1.0, 0.0], [0.7, 0.5, 0.5]])
    hits = _ranker().rank(cand, {SIMILARITY: 1, "colour": 2, "pattern": 1})
    assert [h.product_id for h in hits] == ["p1", "p2", "p0"]  # 2.6, 2.2, 1.9
    assert [h.score for h in hits] == pytest.approx([2.6, 2.2, 1.9])
    for h in hits:
        assert sum(h.contributions.values()) == pytest.approx(h.score)
        assert h.contributions["colour"] == pytest.approx(2 * h.scores["colour"])
    # distance only: the most similar first
    assert _ranker().rank(cand, {SIMILARITY: 1, "colour": 0})[0].product_id == "p0"


def test_presets_roundtrip():
    save_preset("colourful", {SIMILARITY: 1.0, "colour": 2.0})
    assert load_presets()["colourful"] == {SIMILARITY: 1.0, "colour": 2.0}
    with pytest.raises(RankingError):
        save_preset(" ", {})


def test_saved_dynamic_ranker_loads_back_and_a_stale_one_is_refused(tmp_path):
    import torch

    root = tmp_path / "dynamic"
    with pytest.raises(RankingError, match="no dynamic ranker trained"):
        load_model(root, {})
    net = WeightNet(8, len(DIMS))
    key = {"embedder": "e", "index_fingerprint": "gen-1", "dims": DIMS}
    save_model(net, root, key)
    got, meta = load_model(root, key)
    emb, conf = torch.randn(3, 8), torch.rand(3, 2 * (len(DIMS) - 1))
    assert torch.equal(got(emb, conf), net.eval()(emb, conf)) and meta["n_dims"] == len(DIMS)
    with pytest.raises(RankingError, match=r"stale \(index_fingerprint changed\)"):
        load_model(root, {**key, "index_fingerprint": "gen-2"})


def test_dynamic_weights_change_with_the_query():
    """Queries of kind A are answered by colour, kind B by pattern: the net must learn to tell them apart."""
    rng = np.random.default_rng(0)
    queries = []
    for i in range(40):
        kind = i % 2
        vec = np.zeros(8, np.float32)
        vec[kind] = 1
        vec += rng.normal(scale=0.05, size=8).astype(np.float32)
        feats = rng.uniform(size=(12, 3))
        feats[:, 0] = 0.5
        rel = np.zeros(12, bool)
        rel[int(feats[:, 1 + kind].argmax())] = True
        queries.append(TrainingQuery(vec, _cand(feats), rel))
    net, info = train_weightnet(queries, 8, DIMS, epochs=100)
    assert info["loss_last"] < info["loss_first"]
    wa = dynamic_weights(net, queries[0].vector, {}, DIMS)
    wb = dynamic_weights(net, queries[1].vector, {}, DIMS)
    assert wa[1] > wa[2] and wb[2] > wb[1]


def test_ranker_on_sample(sample_index, embedder):
    from core.config.paths import SAMPLE_CATALOG
    from core.embedding.query import embed_query
    from core.search.engine import Searcher, SearchOptions

    searcher = Searcher(sample_index, embedder)
    ranker = searcher.ranker
    q = embed_query(embedder, SAMPLE_CATALOG / "queries" / "q000_P0000.jpg")
    dist = searcher.search(q, SearchOptions(rank="distance"))
    plain = sample_index.search(q.vector, 10)[0]
    assert [h.product_id for h in dist.hits] == [h.product_id for h in plain]
    weights = {d: 0.0 for d in ranker.dims} | {SIMILARITY: 1, "pixel_colour": 1}
    stat = searcher.search(q, SearchOptions.make(weights=weights))
    assert set(stat.query_attributes) == set(ranker.dims[1:])
    for h in stat.hits:
        assert sum(h.contributions.values()) == pytest.approx(h.score, abs=1e-5)
        assert h.contributions["category"] == 0  # weight 0: no contribution
    # per-filter retrieval: candidates beyond the ANN neighbours
    cand = ranker.candidates(q.vector, q.image)
    assert len(cand.products) > ranker.n_ann
    with pytest.raises(RankingError):
        searcher.search(q, SearchOptions(rank="dynamic"))


def test_evaluate_ranking_cli(sample_index, tmp_path, capsys):
    """One run reports the three rankings on the same queries; train and test queries are disjoint."""
    from core.cli import main
    from core.config.paths import SAMPLE_CATALOG

    lines = (SAMPLE_CATALOG / "queries.csv").read_text().splitlines()
    (tmp_path / "queries").mkdir()
    rows = lines[1:21]
    for r in rows:
        shutil.copy(SAMPLE_CATALOG / r.split(",")[0], tmp_path / r.split(",")[0])
    (tmp_path / "test.csv").write_text("\n".join([lines[0], *rows[:12]]) + "\n")
    (tmp_path / "train.csv").write_text("\n".join([lines[0], *rows[12:]]) + "\n")
    rc = main(["evaluate-ranking", "--index", str(sample_index.root), "--queries", str(tmp_path / "test.csv"),
               "--train-queries", str(tmp_path / "train.csv"), "--epochs", "30", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["metrics"]) == {"distance", "static", "dynamic"}
    assert out["n_train"] == 8 and out["n_test"] == 12
    for m in out["metrics"].values():
        assert 0 <= m["recall@1"] <= m["recall@10"] <= 1 and m["n_queries"] == 12
    # the same file as train and test is refused
    rc = main(["evaluate-ranking", "--index", str(sample_index.root), "--queries", str(tmp_path / "test.csv"),
               "--train-queries", str(tmp_path / "test.csv")])
    assert rc == 2
