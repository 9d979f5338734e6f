"""benchmark.uncertainty details (issue #15 item 5: mutation testing). Oracles: multinomial counts
summing to n per resample, hand-made replicate lists whose percentiles are known, and numpy."""

from __future__ import annotations

import numpy as np
import pytest

import benchmark.uncertainty as unc
from benchmark.uncertainty import interval, paired_difference, resample_counts


def test_counts_sum_to_n_in_every_resample_across_chunks(monkeypatch):
    monkeypatch.setattr(unc, "CHUNK_ELEMENTS", 20)  # 4 images: 5 resamples per chunk
    chunks = list(resample_counts(4, 12, seed=1))
    assert [c.shape for c in chunks] == [(4, 5), (4, 5), (4, 2)]
    counts = np.concatenate(chunks, axis=1)
    assert counts.dtype == np.float32 and (counts.sum(0) == 4).all() and (counts >= 0).all()
    assert len({tuple(col) for col in counts.T}) > 1  # resamples differ from each other
    assert list(resample_counts(4, 0, seed=1)) == []


def test_default_chunk_holds_all_small_resamples():
    (counts,) = resample_counts(10, 1000, seed=0)
    assert counts.shape == (10, 1000) and (counts.sum(0) == 10).all()
    assert unc.DEFAULT_RESAMPLES == 1000 and unc.DEFAULT_SEED == 0 and unc.DEFAULT_LEVEL == 0.95


def test_interval_is_centred_when_the_estimate_is_the_median():
    reps = np.arange(1, 1002, dtype=float)  # 1 .. 1001, median 501: z0 = 0, plain percentiles
    lo, hi = interval(501.0, reps, level=0.9)
    assert lo == pytest.approx(np.quantile(reps, 0.05)) and hi == pytest.approx(np.quantile(reps, 0.95))
    lo, hi = interval(501.0, [*reps, np.nan, np.nan], level=0.9)  # NaN replicates are left out
    assert lo == pytest.approx(np.quantile(reps, 0.05)) and hi == pytest.approx(np.quantile(reps, 0.95))
    assert all(type(v) is float for v in (lo, hi))


def test_interval_moves_with_the_bias_and_stays_finite_at_the_extremes():
    reps = np.linspace(0.0, 1.0, 401)
    centred = interval(0.5, reps)
    below = interval(0.4, reps)  # most replicates above the estimate: z0 < 0 moves the interval down
    assert below[0] < centred[0] and below[1] < centred[1]
    for estimate in (-1.0, 2.0):  # all replicates on one side: z0 clamped, no infinity
        lo, hi = interval(estimate, reps)
        assert 0.0 <= lo <= hi <= 1.0
    assert interval(-1.0, reps)[1] < 0.05 and interval(2.0, reps)[0] > 0.95
    assert interval(0.5, [0.5] * 9) == [0.5, 0.5]  # ties count half: share 1/2


def test_paired_difference_by_hand():
    a = np.linspace(0.0, 1.0, 101)
    out = paired_difference(0.7, a + 0.5, 0.2, a, level=0.9)
    assert out == {"delta": pytest.approx(0.5), "delta_lo": pytest.approx(0.5), "delta_hi": pytest.approx(0.5),
                   "significant": True}  # fmt: skip
    spread = paired_difference(0.3, a, 0.3, a[::-1], level=0.9)  # differences -1 .. 1
    assert spread["delta"] == 0.0 and not spread["significant"]
    assert spread["delta_lo"] == pytest.approx(-0.9) and spread["delta_hi"] == pytest.approx(0.9)
    lower = paired_difference(0.1, a, 0.6, a + 0.5)
    assert lower["significant"] and lower["delta_hi"] == pytest.approx(-0.5)
    just_above = paired_difference(0.0, np.r_[np.full(99, 1.0), [0.0]], 0.0, np.zeros(100), level=0.9)
    assert just_above["delta_lo"] == pytest.approx(1.0) and just_above["significant"]
    touching = paired_difference(0.0, np.r_[np.zeros(10), np.ones(90)], 0.0, np.zeros(100), level=0.9)
    assert touching["delta_lo"] == 0.0 and not touching["significant"]  # 0 on the edge: not outside
    nan = paired_difference(0.0, [np.nan, 1.0, 1.0], 0.0, [0.0, 0.0, 0.0])
    assert nan["delta_lo"] == 1.0 and nan["significant"]


def test_interval_computes_in_float64_and_clamps_the_share_half_a_replicate_from_the_ends():
    from scipy import stats

    reps32 = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    reps = reps32.astype(np.float64)
    z = stats.norm.ppf(0.975)
    expected = np.quantile(reps, stats.norm.cdf([-z, z]))  # estimate at the median: z0 = 0
    assert interval(float(np.median(reps)), reps32) == pytest.approx(expected, rel=1e-13, abs=0)
    # every replicate above / below the estimate: the share is clamped to 0.5 / B and 1 - 0.5 / B (no infinite z0)
    for estimate, share in ((-1.0, 0.5 / len(reps)), (2.0, 1 - 0.5 / len(reps))):
        z0 = stats.norm.ppf(share)
        expected = np.quantile(reps, stats.norm.cdf([2 * z0 - z, 2 * z0 + z]))
        assert interval(estimate, reps) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_chunk_holds_at_least_one_resample_and_at_most_chunk_elements_counts(monkeypatch):
    monkeypatch.setattr(unc, "CHUNK_ELEMENTS", 3)  # fewer cells than one resample of 4 images: one resample a chunk
    assert [c.shape for c in resample_counts(4, 3, seed=0)] == [(4, 1)] * 3
    monkeypatch.setattr(unc, "CHUNK_ELEMENTS", 20)  # one image: 20 resamples a chunk, each drawing that image once
    chunks = list(resample_counts(1, 30, seed=0))
    assert [c.shape for c in chunks] == [(1, 20), (1, 10)] and all((c == 1).all() for c in chunks)


def test_a_query_without_relevant_images_does_not_end_the_loop_over_queries():
    from benchmark.metrics import Ranking
    from benchmark.uncertainty import weighted_map

    scores = np.array([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
    labels = np.array([[0, 0, 0], [0, 1, 0]])  # query 0 has no relevant image: only query 1 is defined
    counts = np.array([[1, 2], [1, 1], [1, 0]], dtype=np.float32)
    # by hand: image 1 (relevant) ranks under image 0; precision 1 / (1 + w0): 1/2 with w = 1, 1/3 with w0 = 2
    assert weighted_map(Ranking(scores), [labels], [counts]).tolist() == [[pytest.approx(1 / 2), pytest.approx(1 / 3)]]


def test_undefined_resamples_are_nan_without_a_warning():
    import warnings

    from benchmark.metrics import Ranking
    from benchmark.uncertainty import weighted_map

    counts = np.array([[1, 0], [1, 3], [1, 0]], dtype=np.float32)  # resample 2 leaves the relevant image 0 out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (0 / 0) would be printed by every bench run
        out = weighted_map(Ranking(np.array([[0.9, 0.1, 0.5]])), [np.array([[1, 0, 0]])], [counts])
    assert out[0, 0] == 1.0 and np.isnan(out[0, 1])


def test_ap_sums_in_double_precision_on_a_large_split():
    import math

    from benchmark.metrics import Ranking
    from benchmark.uncertainty import weighted_map

    n = 300_000
    labels = np.zeros((1, n), np.int8)
    labels[0, ::3] = 1  # a third relevant, every score tied: the k-th relevant image has precision k / (k + m)
    p = int(labels.sum())
    m = n - p
    exact = math.fsum(k / (k + m) for k in range(1, p + 1)) / p
    got = weighted_map(Ranking(np.zeros((1, n))), [labels], [np.ones((n, 1), np.float32)])[0, 0]
    assert got == pytest.approx(exact, rel=1e-9, abs=0)  # a float32 sum is off by ~3e-8 here


def test_stored_replicates_with_none_for_undefined_resamples_are_accepted():
    # benchmark.evaluation stores replicates as JSON lists with None where a resample is undefined, and
    # benchmark.leaderboard passes those lists on as they are.
    stored = [None, 0.2, 0.4, 0.6, 0.8, 1.0, None]
    lo, hi = interval(0.6, stored, level=0.5)  # defined 0.2 .. 1.0, median 0.6: z0 = 0, quartiles
    assert (lo, hi) == (pytest.approx(0.4), pytest.approx(0.8))
    out = paired_difference(0.5, [None, 1.0, 1.0, 1.0], 0.2, [0.0, 0.0, None, 0.0])
    assert out["delta"] == pytest.approx(0.3) and (out["delta_lo"], out["delta_hi"]) == (1.0, 1.0) and out["significant"]
    share = unc.share_of_lead((0.5, [0.5, 0.5, 0.5, 0.5]), (0.0, [0.0, None, 0.0, 0.0]), (1.0, [1.0, 1.0, None, 1.0]))
    assert share == {"share": 0.5, "share_lo": 0.5, "share_hi": 0.5, "undefined": 0.5}  # no lead in 2 of 4 resamples


def test_an_interval_ending_exactly_at_zero_is_not_significant():
    out = paired_difference(0.0, np.r_[np.full(10, -1.0), np.zeros(90)], 0.0, np.zeros(100), level=0.9)
    assert out["delta_lo"] == -1.0 and out["delta_hi"] == 0.0 and not out["significant"]
