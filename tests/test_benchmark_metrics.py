"""Retrieval metrics against scikit-learn and a plain-Python reference: ties, empty, ignored, all-relevant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmark.evaluation import evaluate
from benchmark.metrics import IGNORE, query_metrics, summarise
from tests.test_benchmark_uncertainty import bias_corrected_interval


def reference(scores, labels, ks=(1, 5, 10), pk=10) -> list[dict | None]:
    """Plain-Python figures per query: pessimistic order = (score desc, irrelevant first)."""
    out = []
    for s, lab in zip(scores, labels):
        ranked = [lab_i for _, lab_i in sorted(((-si, li) for si, li in zip(s, lab) if li != IGNORE))]
        pos_ranks = [r + 1 for r, li in enumerate(ranked) if li == 1]
        if not pos_ranks:
            out.append(None)
            continue
        n_rel = len(pos_ranks)
        row = {"mAP": sum((j + 1) / r for j, r in enumerate(pos_ranks)) / n_rel}
        row.update({f"hit@{k}": float(pos_ranks[0] <= k) for k in ks})
        row[f"precision@{pk}"] = sum(r <= pk for r in pos_ranks) / pk
        row["r_precision"] = sum(r <= n_rel for r in pos_ranks) / n_rel
        out.append(row)
    return out


def random_case(seed: int, q: int = 6, n: int = 40, levels: int | None = None, p_ignore: float = 0.15):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (q, n)).astype(np.float32) / levels if levels else rng.random((q, n), dtype=np.float32)
    labels = (rng.random((q, n)) < 0.3).astype(np.int8)
    labels[rng.random((q, n)) < p_ignore] = IGNORE
    return scores, labels


def assert_matches_reference(scores, labels, ks=(1, 5, 10), pk=10):
    qm = query_metrics(scores, labels, hit_ks=ks, precision_k=pk)
    for i, ref in enumerate(reference(scores, labels, ks, pk)):
        for name, values in qm.figures().items():
            if ref is None:
                assert math.isnan(values[i])
            else:
                assert values[i] == pytest.approx(ref[name], abs=1e-12), (i, name)


@pytest.mark.parametrize("seed", range(5))
def test_ap_equals_sklearn_without_ties(seed):
    scores, labels = random_case(seed)
    qm = query_metrics(scores, labels)
    for i in range(len(scores)):
        keep = labels[i] != IGNORE
        if (labels[i] == 1).any():
            assert qm.ap[i] == pytest.approx(average_precision_score(labels[i][keep], scores[i][keep]), abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_ties_follow_the_pessimistic_rule(seed):
    scores, labels = random_case(seed, levels=4)  # 40 images on 4 score levels: many ties
    qm = query_metrics(scores, labels)
    for i in range(len(scores)):
        keep = labels[i] != IGNORE
        y, s = labels[i][keep], scores[i][keep]
        if not (y == 1).any():
            continue
        # Break ties by hand (irrelevant first) and hand sklearn strictly ordered scores.
        order = np.lexsort((y, -s))
        strict = np.empty(len(y))
        strict[order] = -np.arange(len(y))
        assert qm.ap[i] == pytest.approx(average_precision_score(y, strict), abs=1e-9)
        # sklearn's one-threshold-per-tie AP is never below the pessimistic one.
        assert qm.ap[i] <= average_precision_score(y, s) + 1e-12


def test_tie_example_by_hand():
    # Three tied images, two relevant: pessimistic ranks 2 and 3 -> AP = (1/2 + 2/3) / 2; sklearn: 2/3.
    scores, labels = np.array([[0.5, 0.5, 0.5]]), np.array([[1, 1, 0]])
    assert query_metrics(scores, labels).ap[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert average_precision_score(labels[0], scores[0]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("levels", [None, 3, 1])
@pytest.mark.parametrize("seed", range(3))
def test_all_figures_match_reference(seed, levels):
    assert_matches_reference(*random_case(seed, levels=levels))
    assert_matches_reference(*random_case(seed, n=7, levels=levels), ks=(1, 5, 8), pk=8)  # k beyond n


@pytest.mark.parametrize("seed", range(3))
def test_metrics_do_not_depend_on_image_order(seed):
    scores, labels = random_case(seed, levels=3)
    perm = np.random.default_rng(seed).permutation(scores.shape[1])
    a, b = query_metrics(scores, labels), query_metrics(scores[:, perm], labels[:, perm])
    for name, values in a.figures().items():
        np.testing.assert_allclose(values, b.figures()[name], rtol=1e-12)


def test_ignored_images_are_as_if_removed():
    scores, labels = random_case(7, n=30)
    keep = np.ones(30, dtype=bool)
    keep[::3] = False
    labels[:, ~keep] = IGNORE
    a, b = query_metrics(scores, labels), query_metrics(scores[:, keep], labels[:, keep])
    for name, values in a.figures().items():
        np.testing.assert_allclose(values, b.figures()[name], rtol=1e-12)


def test_queries_without_positives_are_left_out_and_counted():
    scores = np.array([[0.9, 0.1, 0.5], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
    labels = np.array([[1, 0, 0], [0, 0, 0], [IGNORE, IGNORE, IGNORE]])
    summary = summarise(query_metrics(scores, labels))
    assert summary["mAP"] == 1.0 and summary["hit@1"] == 1.0
    assert (summary["n_queries"], summary["n_queries_without_positives"]) == (1, 2)
    assert (summary["n_positives"], summary["n_negatives"]) == (1, 5)
    empty = summarise(query_metrics(scores[1:], labels[1:]))
    assert empty["mAP"] is None and empty["n_queries"] == 0


def test_all_relevant():
    scores = np.random.default_rng(0).random((2, 6))
    qm = query_metrics(scores, np.ones((2, 6)), hit_ks=(1, 5), precision_k=10)
    np.testing.assert_array_equal(qm.ap, 1.0)
    np.testing.assert_array_equal(qm.hits[1], 1.0)
    np.testing.assert_array_equal(qm.r_precision, 1.0)
    np.testing.assert_array_equal(qm.precision, 0.6)  # 6 relevant images in the top 10, denominator 10


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shapes"):
        query_metrics(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        query_metrics(np.array([[np.nan, 0.0]]), np.array([[1, 0]]))


def test_evaluate_reports_overall_buckets_and_classes():
    scores, labels = random_case(3, q=3, n=20)
    per_bucket = np.stack([np.where(labels == 1, IGNORE, labels), labels])
    out = evaluate(scores, ["a", "b", "c"], labels, ["small", "large"], per_bucket, k=10)
    assert set(out["buckets"]) == {"small", "large"}
    assert out["buckets"]["small"]["mAP"] is None and out["buckets"]["small"]["n_queries_without_positives"] == 3
    ref_map = [r["mAP"] for r in reference(scores, labels) if r is not None]
    assert out["buckets"]["large"]["mAP"] == pytest.approx(sum(ref_map) / len(ref_map))
    assert set(out["overall"]["per_class"]) == {"a", "b", "c"}
    ap_a = out["overall"]["per_class"]["a"]["AP"]
    assert ap_a == pytest.approx(reference(scores, labels)[0]["mAP"])


def test_evaluate_records_bootstrap_intervals():
    scores, labels = random_case(4, q=3, n=20)
    per_bucket = np.stack([np.where(labels == 1, IGNORE, labels), labels])
    out = evaluate(scores, ["a", "b", "c"], labels, ["small", "large"], per_bucket, k=10, n_resamples=300, seed=7)
    assert out == evaluate(scores, ["a", "b", "c"], labels, ["small", "large"], per_bucket, k=10, n_resamples=300, seed=7)
    assert {"resamples": 300, "seed": 7, "level": 0.95}.items() <= out["bootstrap"].items()
    overall, small, large = out["overall"], out["buckets"]["small"], out["buckets"]["large"]
    assert small["mAP_ci"] is None and small["mAP_replicates"] == [None] * 300
    assert large["mAP_replicates"] == overall["mAP_replicates"] and len(overall["mAP_replicates"]) == 300
    m = overall["mAP"]
    assert overall["mAP_ci"] == pytest.approx(bias_corrected_interval(m, overall["mAP_replicates"]), abs=1e-6)
    other = evaluate(scores, ["a", "b", "c"], labels, ["small", "large"], per_bucket, k=10, n_resamples=300, seed=8)
    assert other["overall"]["mAP"] == m and other["overall"]["mAP_replicates"] != overall["mAP_replicates"]
