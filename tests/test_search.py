"""The default search pipeline (core.search): attribute re-ranking over Annoy neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from core.images import open_image
from core.ranking import RankingError
from core.search import make_ranker, search_products


@pytest.fixture(scope="module")
def ranker(sample_index, embedder):
    return make_ranker(sample_index, embedder)


@pytest.fixture(scope="module")
def query(sample_catalog, embedder):
    img = open_image(sample_catalog.root / "queries" / sorted((sample_catalog.root / "queries").iterdir())[0].name)
    return embedder.embed_images([img])[0], img


def test_distance_is_plain_nearest_neighbours(sample_index, query):
    v, img = query
    got = search_products(sample_index, v, img, k=10, rank="distance")
    assert [h.product_id for h in got] == [h.product_id for h in sample_index.search(v, 10)[0]]
    assert all(not h.ranking for h in got)


def test_static_ranks_by_weighted_sum_and_keeps_cosine_score(sample_index, ranker, query):
    v, img = query
    got = search_products(sample_index, v, img, k=10, ranker=ranker)
    assert [h.rank for h in got] == list(range(1, 11))
    totals = [sum(h.ranking.values()) for h in got]
    assert all(a >= b - 1e-6 for a, b in zip(totals, totals[1:]))  # ordered by the weighted sum
    vec = np.asarray(sample_index.vectors)
    for h in got:  # score is the cosine of the best image of that product, as in distance search
        ids = [i for i, it in enumerate(sample_index.items) if it["product_id"] == h.product_id]
        assert h.score == pytest.approx(float((vec[ids] @ v).max()), abs=1e-5)
        assert h.ranking["similarity"] == pytest.approx(h.score, abs=1e-5)
    only_sim = search_products(sample_index, v, img, k=10, ranker=ranker, weights={"similarity": 1.0})
    assert [h.product_id for h in only_sim] == [h.product_id for h in sample_index.search(v, 10)[0]]


def test_static_respects_filters_and_min_score(sample_index, ranker, query):
    v, img = query
    got = search_products(sample_index, v, img, k=10, ranker=ranker, where=["category=mug"], min_score=0.3)
    assert got and all(h.fields["category"] == "mug" and h.score >= 0.3 for h in got)
    assert not search_products(sample_index, v, img, k=10, ranker=ranker, min_score=1.01)


def test_static_without_ranker_or_unknown_rank_is_an_error(sample_index, query):
    v, img = query
    with pytest.raises(RankingError):
        search_products(sample_index, v, img, rank="static")
    with pytest.raises(RankingError):
        search_products(sample_index, v, img, rank="bogus")


def test_dynamic_uses_the_models_weights_for_this_query(sample_index, ranker, query):
    import torch

    from core.ranking import WeightNet, dynamic_weights

    v, img = query
    with pytest.raises(RankingError, match="trained model"):
        search_products(sample_index, v, img, rank="dynamic", ranker=ranker)
    torch.manual_seed(0)
    net = WeightNet(len(v), len(ranker.dims)).eval()
    got = search_products(sample_index, v, img, k=10, rank="dynamic", ranker=ranker, net=net)
    cand = ranker.candidates(v, img)
    w = dynamic_weights(net, v, cand.query_attributes, ranker.dims)
    ranked = ranker.rank(cand, w, 10)
    assert [h.product_id for h in got] == [h.product_id for h in ranked]
    for h, r in zip(got, ranked):  # each contribution is this query's weight x the product's score there
        for d, wd in zip(ranker.dims, w):
            assert h.ranking[d] == pytest.approx(wd * r.scores[d], abs=1e-5)
