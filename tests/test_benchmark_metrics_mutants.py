"""benchmark.metrics edge cases (issue #15 item 5: mutation testing). Oracle: the formulas of the
module docstring evaluated by hand on tiny score matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.metrics import IGNORE, NEGATIVE, POSITIVE, Ranking, per_query, query_metrics, summarise


def test_label_codes():
    assert (POSITIVE, NEGATIVE, IGNORE) == (1, 0, -1)


def test_default_figures_and_their_order():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.0]])
    labels = np.zeros((1, 12), dtype=np.int8)
    labels[0, [1, 10]] = 1  # ranks 2 and 11
    qm = query_metrics(scores, labels)
    assert list(qm.figures()) == ["mAP", "hit@1", "hit@5", "hit@10", "precision@10", "r_precision"]
    assert qm.ap[0] == pytest.approx((1 / 2 + 2 / 11) / 2)
    assert (qm.hits[1][0], qm.hits[5][0], qm.hits[10][0]) == (0.0, 1.0, 1.0)
    assert qm.precision_k == 10 and qm.precision[0] == pytest.approx(1 / 10)
    assert qm.r_precision[0] == pytest.approx(1 / 2)
    assert (qm.n_positives[0], qm.n_negatives[0]) == (2, 10)


def test_k_of_one_is_allowed_and_zero_is_not():
    scores, labels = np.array([[0.2, 0.9]]), np.array([[1, 1]])
    qm = query_metrics(scores, labels, hit_ks=(1,), precision_k=1)
    assert qm.hits[1][0] == 1.0 and qm.precision[0] == 1.0 and list(qm.hits) == [1]
    for kwargs in ({"precision_k": 0}, {"hit_ks": (0, 1)}, {"hit_ks": (1, -2)}):
        with pytest.raises(ValueError, match="^k must be >= 1$"):
            query_metrics(scores, labels, **kwargs)


def test_precision_at_k_counts_exactly_the_top_k():
    # positives at ranks 1, 3, 4; precision@3 = 2/3, precision@4 = 3/4; hit@k boundaries
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    labels = np.array([[1, 0, 1, 1, 0]])
    assert query_metrics(scores, labels, hit_ks=(1,), precision_k=3).precision[0] == pytest.approx(2 / 3)
    assert query_metrics(scores, labels, hit_ks=(1,), precision_k=4).precision[0] == pytest.approx(3 / 4)
    shifted = np.array([[0, 0, 1, 1, 0]])  # first positive at rank 3
    qm = query_metrics(scores, shifted, hit_ks=(2, 3), precision_k=2)
    assert (qm.hits[2][0], qm.hits[3][0], qm.precision[0], qm.r_precision[0]) == (0.0, 1.0, 0.0, 0.0)


def test_ties_rank_the_irrelevant_first():
    scores = np.array([[1.0, 1.0, 1.0, 0.0]])
    labels = np.array([[1, 0, 0, 1]])  # the tied positive ranks 3rd, the last one 4th
    qm = query_metrics(scores, labels, hit_ks=(1, 3), precision_k=2)
    assert qm.ap[0] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert (qm.hits[1][0], qm.hits[3][0], qm.precision[0]) == (0.0, 1.0, 0.0)
    ints = query_metrics(np.array([[2, 2, 1]]), np.array([[0, 1, 0]]), hit_ks=(1,))
    assert ints.ap[0] == pytest.approx(1 / 2)


def test_shape_and_value_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"^scores must be \[Q, N\], got \(3,\)$"):
        Ranking(np.zeros(3))
    with pytest.raises(ValueError, match=r"^scores must be finite$"):
        Ranking(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match=r"^scores \(1, 2\) and labels \(1, 3\) must be equal \[Q, N\] shapes$"):
        Ranking(np.zeros((1, 2))).metrics(np.zeros((1, 3)))


def test_empty_image_set_has_no_figures():
    qm = query_metrics(np.zeros((2, 0)), np.zeros((2, 0)))
    assert qm.n_positives.tolist() == [0, 0] and all(math.isnan(v) for v in qm.ap)


def test_summarise_and_per_query_by_hand():
    scores = np.array([[0.9, 0.1, 0.5], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
    labels = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 1]])
    qm = query_metrics(scores, labels, hit_ks=(1, 2), precision_k=2)
    # q0: positives at ranks 2, 3 -> AP (1/2 + 2/3) / 2; q2: ranks 1, 3 -> AP (1 + 2/3) / 2
    ap0, ap2 = (1 / 2 + 2 / 3) / 2, (1 + 2 / 3) / 2
    summary = summarise(qm)
    assert summary["mAP"] == pytest.approx((ap0 + ap2) / 2)
    assert summary["hit@1"] == pytest.approx(0.5) and summary["hit@2"] == pytest.approx(1.0)
    assert summary["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert summary["r_precision"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert (summary["n_queries"], summary["n_queries_without_positives"], summary["n_positives"], summary["n_negatives"]) == (2, 1, 4, 5)
    rows = per_query(qm, ["a", "b", "c"])
    assert list(rows) == ["a", "b", "c"]
    assert rows["a"] == {"AP": pytest.approx(ap0), "hit@1": 0.0, "hit@2": 1.0, "precision@2": 0.5, "r_precision": 0.5,
                         "n_positives": 2, "n_negatives": 1}  # fmt: skip
    assert rows["b"] == {"AP": None, "hit@1": None, "hit@2": None, "precision@2": None, "r_precision": None,
                         "n_positives": 0, "n_negatives": 3}  # fmt: skip
    assert type(rows["a"]["AP"]) is float and type(rows["a"]["n_positives"]) is int


def test_ranking_metrics_defaults_match_query_metrics():
    scores = np.arange(12, 0, -1, dtype=float)[None]  # image i at rank i + 1
    labels = np.zeros((1, 12), dtype=np.int8)
    labels[0, [0, 10]] = 1
    qm = Ranking(scores).metrics(labels)
    assert qm.precision_k == 10 and list(qm.hits) == [1, 5, 10]
    assert qm.precision[0] == pytest.approx(1 / 10)  # rank 11 is outside the top 10
