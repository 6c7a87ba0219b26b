"""The one search entry point (core.search.engine.Searcher): attribute re-ranking over Annoy neighbours."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.embedding.query import embed_query
from core.search.engine import Searcher, SearchOptions
from core.search.ranking import SIMILARITY, RankingError


@pytest.fixture(scope="module")
def searcher(sample_index, embedder):
    return Searcher(sample_index, embedder)


@pytest.fixture(scope="module")
def queries(sample_catalog, embedder):
    files = sorted((sample_catalog.root / "queries").iterdir())[:6]
    return [embed_query(embedder, f, name=f.name) for f in files]


def test_distance_is_plain_nearest_neighbours(sample_index, searcher, queries):
    q = queries[0]
    got = searcher.search(q, SearchOptions(rank="distance"))
    assert [h.product_id for h in got.hits] == [h.product_id for h in sample_index.search(q.vector, 10)[0]]
    assert all(h.score == h.similarity and h.contributions == {SIMILARITY: h.score} for h in got.hits)
    assert got.weights == {SIMILARITY: 1.0} and got.rank == "distance"


def test_static_ranks_by_its_score_whose_parts_add_up(sample_index, searcher, queries):
    q = queries[0]
    res = searcher.search(q)  # the default: static
    got = res.hits
    assert res.rank == "static" and [h.rank for h in got] == list(range(1, 11))
    assert all(a.score >= b.score - 1e-6 for a, b in zip(got, got[1:]))  # ordered by the score it shows
    vec = np.asarray(sample_index.vectors)
    for h in got:  # similarity is the cosine of the best image of that product, as in distance search
        assert h.similarity == pytest.approx(float((vec[sample_index.vector_ids[h.product_id]] @ q.vector).max()),
                                             abs=1e-5)
        assert sum(h.contributions.values()) == pytest.approx(h.score, abs=1e-5)
        assert h.contributions[SIMILARITY] == pytest.approx(h.similarity * res.weights[SIMILARITY], abs=1e-5)
    assert set(res.query_attributes) == set(searcher.dims[1:]) and res.seconds > 0
    only_sim = searcher.search(q, SearchOptions.make(weights={d: 0.0 for d in searcher.dims[1:]}))
    assert [h.product_id for h in only_sim.hits] == [h.product_id for h in sample_index.search(q.vector, 10)[0]]


def test_static_respects_filters_and_min_similarity(searcher, queries):
    q = queries[0]
    got = searcher.search(q, SearchOptions.make(where=["category=mug"], min_similarity=0.3)).hits
    assert got and all(h.fields["category"] == "mug" and h.similarity >= 0.3 for h in got)
    assert not searcher.search(q, SearchOptions.make(min_similarity=1.01)).hits


def test_bad_options_are_clear_errors(searcher, queries):
    with pytest.raises(RankingError):
        SearchOptions(rank="bogus")
    with pytest.raises(RankingError):
        SearchOptions.make(rank="distance", weights={SIMILARITY: 1.0})
    with pytest.raises(RankingError, match="unknown dimension"):
        searcher.search(queries[0], SearchOptions.make(weights={"nope": 1.0}))


def test_concurrent_requests_get_what_they_would_get_alone(sample_index, embedder, queries):
    """Nothing shared is changed by a request: threads with different k, filters and rankings interleave."""
    searcher = Searcher(sample_index, embedder)
    asks = [SearchOptions.make(k=k, where=w, rank=r) for k, w, r in
            [(3, None, "static"), (30, ["category=mug"], "static"), (10, ["price<60"], "distance"),
             (25, None, "static")]]
    jobs = [(q, o) for q in queries for o in asks]
    alone = [[(h.product_id, h.score) for h in Searcher(sample_index, embedder).search(q, o).hits] for q, o in jobs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            together = list(pool.map(lambda j: [(h.product_id, h.score) for h in searcher.search(*j).hits], jobs))
            assert together == alone


def test_dynamic_uses_the_models_weights_for_this_query(searcher, queries, monkeypatch):
    import torch

    from core.search.dynamic_ranker import WeightNet, dynamic_weights

    q = queries[0]
    with pytest.raises(RankingError, match="dynamic ranker"):
        searcher.search(q, SearchOptions(rank="dynamic"))
    torch.manual_seed(0)
    net = WeightNet(len(q.vector), len(searcher.dims)).eval()
    monkeypatch.setattr(searcher, "_net", net)
    res = searcher.search(q, SearchOptions(rank="dynamic"))
    ranker = searcher.ranker
    cand = ranker.candidates(q.vector, q.image, n_ann=max(ranker.n_ann, 30))
    w = dynamic_weights(net, q.vector, cand.query_attributes, ranker.dims)
    ranked = ranker.rank(cand, w, 10)
    assert [h.product_id for h in res.hits] == [h.product_id for h in ranked]
    for h, r in zip(res.hits, ranked):  # each contribution is this query's weight x the product's score there
        for d, wd in zip(ranker.dims, w):
            assert h.contributions[d] == pytest.approx(wd * r.scores[d], abs=1e-5)
