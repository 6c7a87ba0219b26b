"""The one definition of the retrieval metrics, checked on lists worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.metrics import (
    average_precision,
    first_relevant,
    neighbour_recall,
    precision_at,
    recall_at,
    relevance,
    summary,
)


def test_relevance_and_first_relevant():
    rel = relevance(["b", "a", "c", "a"], "a")
    assert rel == [False, True, False, True]
    assert first_relevant(rel) == 2
    assert first_relevant([False, False]) is None
    assert first_relevant([]) is None
    assert first_relevant(np.array(["x", "y"], dtype=object) == "x") == 1


def test_recall_counts_queries_whose_first_relevant_is_within_k():
    ranks = [1, 3, None, 7, 2]
    assert recall_at(ranks) == {"recall@1": 0.2, "recall@5": 0.6, "recall@10": 0.8}
    assert recall_at(ranks, (2,)) == {"recall@2": 0.4}
    assert recall_at([], (1, 5)) == {"recall@1": 0.0, "recall@5": 0.0}


def test_precision_at_k_divides_by_k():
    assert precision_at([True, False, True], 10) == pytest.approx(0.2)
    assert precision_at([True] * 12, 10) == 1.0
    assert precision_at([False, True], 1) == 0.0


def test_average_precision_by_hand():
    # relevant at ranks 1 and 3 of 3 relevant products: (1/1 + 2/3) / 3
    assert average_precision([True, False, True, False], 3) == pytest.approx((1 + 2 / 3) / 3)
    # more relevant products than k: normalised by k
    assert average_precision([True] * 5, 50, k=5) == 1.0
    # relevance after k does not count
    assert average_precision([False, False, True], 1, k=2) == 0.0
    assert average_precision([True], 0) == 0.0


def test_summary_keeps_the_order_and_counts_queries():
    m = summary([1, None], [1.0, 0.0], **{"precision@10": 0.5})
    assert list(m) == ["recall@1", "recall@5", "recall@10", "map@10", "precision@10", "n_queries"]
    assert m["recall@1"] == 0.5 and m["map@10"] == 0.5 and m["n_queries"] == 2
    assert summary([], [])["map@10"] == 0.0


def test_neighbour_recall_is_the_share_of_the_true_top_k_found():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert neighbour_recall([np.array([4, 3, 2, 1]), np.array([8, 7, 6, 5])], truth, k=4) == 1.0
    assert neighbour_recall([[1, 2, 9, 9], [0, 0, 0, 5]], truth, k=4) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert neighbour_recall([["a", "b"]], [["b", "c"]], k=2) == 0.5
