"""Bootstrap over images: weighted AP against scikit-learn and a plain loop, coverage against a known model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.metrics import average_precision_score

from benchmark.metrics import IGNORE, Ranking
from benchmark.uncertainty import bootstrap_map, interval, paired_difference, resample_counts, share_of_lead, weighted_map


def labelled_scores(rng, mus, prevalences, n: int):
    """Per query: an image is relevant with probability pi; scores N(mu, 1) if relevant, else N(0, 1)."""
    labels = (rng.random((len(mus), n)) < np.asarray(prevalences)[:, None]).astype(np.int8)
    return rng.standard_normal(labels.shape) + np.asarray(mus)[:, None] * labels, labels


def population_ap(mu: float, pi: float) -> float:
    """AP of the score model itself: E over relevant scores t of P(relevant | score >= t)."""

    def integrand(t):
        hit, miss = pi * stats.norm.sf(t - mu), (1 - pi) * stats.norm.sf(t)
        return hit / (hit + miss) * stats.norm.pdf(t - mu)

    return integrate.quad(integrand, mu - 12, mu + 12)[0]


def bias_corrected_interval(estimate, replicates, level=0.95):
    """The BC percentile interval, written out with scipy (Efron and Tibshirani 1993, 14.3)."""
    reps = np.asarray(replicates, dtype=float)
    reps = reps[~np.isnan(reps)]
    z0 = stats.norm.ppf(np.mean(reps < estimate) + 0.5 * np.mean(reps == estimate))
    z = stats.norm.ppf((1 + level) / 2)
    return np.quantile(reps, stats.norm.cdf([2 * z0 - z, 2 * z0 + z]))


def test_interval_is_the_bias_corrected_percentile_interval():
    rng = np.random.default_rng(2)
    replicates = np.round(rng.gamma(4, 0.05, 999), 3)  # skewed, with ties
    replicates[::50] = np.nan
    for estimate in (0.15, 0.2, 0.25):
        np.testing.assert_allclose(interval(estimate, replicates), bias_corrected_interval(estimate, replicates), atol=1e-12)
    assert interval(0.3, np.full(20, 0.3)) == [0.3, 0.3]


def test_counts_are_seeded_multinomial_draws():
    a = np.concatenate(list(resample_counts(7, 50, seed=3)), axis=1)
    b = np.concatenate(list(resample_counts(7, 50, seed=3)), axis=1)
    assert a.shape == (7, 50) and (a.sum(0) == 7).all() and (a >= 0).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.concatenate(list(resample_counts(7, 50, seed=4)), axis=1))


@pytest.mark.parametrize("seed", range(3))
def test_resampled_map_equals_sklearn_with_sample_weights(seed):
    rng = np.random.default_rng(seed)
    scores, labels = labelled_scores(rng, [0.5, 1, 2, 0, 1], [0.3, 0.2, 0.4, 0.1, 0.5], 30)
    labels[rng.random(labels.shape) < 0.1] = IGNORE
    (counts,) = resample_counts(30, 20, seed=seed)
    replicates = bootstrap_map(Ranking(scores), [labels], 20, seed=seed)[0]
    for b in range(20):
        aps = []
        for s, y in zip(scores, labels):
            keep = (y != IGNORE) & (counts[:, b] > 0)
            if (y[keep] == 1).any():
                aps.append(average_precision_score(y[keep], s[keep], sample_weight=counts[keep, b]))
        assert replicates[b] == pytest.approx(np.mean(aps), abs=1e-6)


def weighted_ap_by_hand(scores, labels, weights) -> float | None:
    """Plain loop: relevant images in (score desc, image index) order; irrelevant ones tied above count."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    relevant_so_far, total, weight = 0.0, 0.0, 0.0
    for i in order:
        if labels[i] != 1 or weights[i] == 0:
            continue
        relevant_so_far += weights[i]
        above = sum(w for s, y, w in zip(scores, labels, weights) if y == 0 and s >= scores[i])
        total += weights[i] * relevant_so_far / (relevant_so_far + above)
        weight += weights[i]
    return total / weight if weight else None


def test_ties_follow_the_pessimistic_rule_under_any_integer_weights():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, (4, 25)) / 4  # four score levels: ties everywhere
    labels = (rng.random((4, 25)) < 0.4).astype(np.int8)
    labels[rng.random((4, 25)) < 0.1] = IGNORE
    counts = rng.integers(0, 4, (25, 30)).astype(np.float32)  # any integer weights, zeros included
    replicates = weighted_map(Ranking(scores), [labels], [counts[:, :13], counts[:, 13:]])[0]
    for b in range(30):
        aps = [weighted_ap_by_hand(s, y, counts[:, b]) for s, y in zip(scores, labels)]
        assert replicates[b] == pytest.approx(np.mean([a for a in aps if a is not None]), abs=1e-6)


def test_resample_without_relevant_images_is_undefined():
    # One relevant image among 3: about (2/3)^3 of the resamples leave it out.
    replicates = bootstrap_map(Ranking(np.array([[0.9, 0.1, 0.5]])), [np.array([[1, 0, 0]])], 200)[0]
    assert 0.2 < np.isnan(replicates).mean() < 0.4
    assert interval(1.0, replicates) == [1.0, 1.0]


MUS, PREVALENCES, N_IMAGES = [0.5, 1.0, 1.5, 2.5], [0.2, 0.3, 0.4, 0.5], 50


def test_interval_covers_the_population_map():
    """Nominal 95% over 300 seeded draws of 50 images (see the module docstring of benchmark.uncertainty)."""
    truth = np.mean([population_ap(mu, pi) for mu, pi in zip(MUS, PREVALENCES)])
    covered = []
    for draw in range(300):
        scores, labels = labelled_scores(np.random.default_rng(1000 + draw), MUS, PREVALENCES, N_IMAGES)
        ranking = Ranking(scores)
        estimate = float(np.nanmean(ranking.metrics(labels).ap))
        lo, hi = interval(estimate, bootstrap_map(ranking, [labels])[0])
        covered.append(lo <= truth <= hi)
    assert 0.90 <= np.mean(covered) <= 0.99


def test_paired_test_holds_its_level_and_finds_a_real_difference():
    """Two scorers of equal population mAP differ significantly in about 5% of draws; a better one mostly."""
    rejected, found = [], []
    for draw in range(300):
        rng = np.random.default_rng(5000 + draw)
        labels = (rng.random((len(MUS), N_IMAGES)) < np.asarray(PREVALENCES)[:, None]).astype(np.int8)
        signal = np.asarray(MUS)[:, None] * labels

        def summary(scores):
            ranking = Ranking(scores)
            return float(np.nanmean(ranking.metrics(labels).ap)), bootstrap_map(ranking, [labels])[0]

        a, b = summary(signal + rng.standard_normal(labels.shape)), summary(signal + rng.standard_normal(labels.shape))
        rejected.append(paired_difference(*a, *b)["significant"])
        if draw < 30:
            better = summary(3 * signal + rng.standard_normal(labels.shape))
            found.append(paired_difference(*better, *a)["significant"])
    assert 0.01 <= np.mean(rejected) <= 0.10
    assert np.mean(found) >= 0.9


def test_share_of_lead_is_exact_on_runs_that_sit_at_known_fractions_of_the_lead():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.4, 500)
    teacher = base + rng.uniform(0.1, 0.5, 500)
    for fraction in (0.0, 0.25, 1.0):
        student = base + fraction * (teacher - base)
        out = share_of_lead((student.mean(), student), (base.mean(), base), (teacher.mean(), teacher))
        assert out["share"] == pytest.approx(fraction)
        assert (out["share_lo"], out["share_hi"]) == pytest.approx((fraction, fraction))
        assert out["undefined"] == 0.0


def test_share_of_lead_leaves_out_resamples_where_the_teacher_does_not_lead():
    base = np.full(4, 0.5)
    teacher = np.array([0.9, 0.5, 0.4, 0.7])  # leads in resamples 0 and 3 only
    student = np.array([0.7, 0.9, 0.9, 0.55])  # shares 0.5 and 0.25 there
    out = share_of_lead((0.6, student), (0.5, base), (0.7, teacher), level=0.5)
    assert out["share"] == pytest.approx(0.5) and out["undefined"] == 0.5
    assert (out["share_lo"], out["share_hi"]) == pytest.approx((0.3125, 0.4375))  # quartiles of {0.25, 0.5}
