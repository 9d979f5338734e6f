"""Bootstrap over images: confidence intervals of mAP and paired comparisons of two runs on one split.

Unit: images, not queries. The class queries are the whole vocabulary (fixed, not a sample), while
the images are a sample of the renderer's scene distribution, so the interval answers "how much
would mAP move on another split of this size". Resample b draws the N images with replacement
(multinomial counts w_bi) from a generator seeded by `seed` alone: every run on a split of N images
gets the same resamples, two runs are paired over images by subtracting their replicates, and no
per-image data has to be stored (a run keeps B replicates per block, whatever N).

AP of a query under counts w is the plug-in AP of the resampled set, with metrics.py's pessimistic
rule:  AP_w = sum_{relevant i} w_i prec_i / sum_{relevant i} w_i,  prec_i = (relevant weight ranked
up to i, ties in image order) / (that + weight of irrelevant images scoring >= s_i).  With all
w = 1 it is the reported AP; the tests check it against scikit-learn's AP with sample weights.

Interval of an mAP: bias-corrected percentile (BC). Sample AP is biased upwards (each relevant
image counts itself in its own precision) and a resample repeats that bias once more (an image
drawn w times counts all its copies: E[w^2] / E[w] = 2), so the plain percentile interval sits
above the truth. BC moves the percentiles by z0 = Phi^-1(share of replicates below the estimate).
Coverage of the population mAP of a Gaussian score model (1000 draws each; 4 queries,
tests/test_benchmark_uncertainty.py):

    images (relevant share)   BC      basic (pivot)   percentile
    20  (0.2-0.5)             0.898   0.830           0.806
    50  (0.2-0.5)             0.920   0.894           0.864
    100 (0.05-0.3)            0.915   0.925           0.809
    200 (0.05-0.3)            0.926   0.940           0.838

BC holds up best on small splits such as the 20-image test split; BCa's acceleration (jackknife)
did not help (0.878 at 20 images, 600 draws). Paired differences: the percentile interval of the replicate
differences, the biases of the two runs cancelling; 0 outside it = significant at 1 - level. Two
scorers of equal population mAP were declared different in 5.5% of 400 draws of 50 images (BC:
8.8%) and 3.5% of 200 draws of 200 images (BC: 5.0%).

A resample in which no query of a block keeps a relevant image has no mAP (NaN); quantiles use the
others.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from .metrics import IGNORE, POSITIVE, Ranking

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
CHUNK_ELEMENTS = 2_000_000  # resample counts held at once: images x resamples


def resample_counts(n: int, n_resamples: int, seed: int):
    """Multinomial counts of the n images in each resample: float32 chunks [n, C]; depends on (n, seed) only."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, rows):
        c = min(rows, n_resamples - start)
        cells = rng.integers(0, n, (c, n)) * c + np.arange(c)[:, None]  # image * c + resample
        yield np.bincount(cells.ravel(), minlength=n * c).reshape(n, c).astype(np.float32)


def _cumulative(rows: np.ndarray) -> np.ndarray:
    """Sums of the first k rows, for k = 0 .. len(rows): [len(rows) + 1, C]."""
    out = np.zeros((len(rows) + 1, rows.shape[1]), rows.dtype)
    np.cumsum(rows, axis=0, out=out[1:])
    return out


def bootstrap_map(ranking: Ranking, label_blocks, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """mAP of each [Q, N] label matrix in each resample: [blocks, n_resamples], NaN where undefined."""
    return weighted_map(ranking, label_blocks, resample_counts(ranking.shape[1], n_resamples, seed))


def weighted_map(ranking: Ranking, label_blocks, weight_chunks) -> np.ndarray:
    """mAP of each [Q, N] label matrix under each column of integer image weights (chunks [N, C]): [blocks, columns]."""
    order, tie_end = ranking.order.numpy(), ranking.tie_end.numpy()
    q = ranking.shape[0]
    # Per (block, query): ranked positions of relevant and left-out images, and how many images, relevant
    # images and left-out images rank before the end of each relevant image's run of ties.
    plans = []
    for labels in label_blocks:
        ranked = np.take_along_axis(np.asarray(labels), order, axis=1)
        plan = []
        for j in range(q):
            pos, ign = np.flatnonzero(ranked[j] == POSITIVE), np.flatnonzero(ranked[j] == IGNORE)
            ends = tie_end[j, pos]
            plan.append((pos, ign, ends, np.searchsorted(pos, ends), np.searchsorted(ign, ends)) if len(pos) else None)
        plans.append(plan)
    out = []
    for counts in weight_chunks:
        c = counts.shape[1]
        total, defined = np.zeros((len(plans), c)), np.zeros((len(plans), c))
        for j in range(q):
            if all(plan[j] is None for plan in plans):
                continue
            w = counts[order[j]]  # [N, C] in ranked order; cumulative sums run down contiguous rows
            before = _cumulative(w)  # shared by the blocks: only relevant and left-out images differ
            for b, plan in enumerate(plans):
                if plan[j] is None:
                    continue
                pos, ign, ends, pos_before, ign_before = plan[j]
                wp = w[pos]
                relevant = _cumulative(wp)
                tp = relevant[1:]
                irrelevant_above = before[ends] - relevant[pos_before] - _cumulative(w[ign])[ign_before]
                # Counts are integers: tp + irrelevant_above is 0 only where wp is 0 too.
                prec = tp / np.maximum(tp + irrelevant_above, 1)
                n_pos = tp[-1]
                has = n_pos > 0
                total[b] += np.where(has, np.einsum("pc,pc->c", wp, prec, dtype=np.float64) / np.maximum(n_pos, 1), 0.0)
                defined[b] += has
        with np.errstate(invalid="ignore"):
            out.append(total / defined)
    return np.concatenate(out, axis=1)


def interval(estimate: float, replicates, level: float = DEFAULT_LEVEL) -> list[float]:
    """Bias-corrected percentile interval: percentiles Phi(2 z0 -+ z) of the defined replicates,
    z0 = Phi^-1(share of replicates below the estimate, ties counting half)."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[~np.isnan(reps)]
    share = (np.sum(reps < estimate) + 0.5 * np.sum(reps == estimate)) / len(reps)
    normal = NormalDist()
    z0 = normal.inv_cdf(min(max(share, 0.5 / len(reps)), 1 - 0.5 / len(reps)))
    z = normal.inv_cdf((1 + level) / 2)
    return [float(x) for x in np.quantile(reps, [normal.cdf(2 * z0 - z), normal.cdf(2 * z0 + z)])]


def paired_difference(estimate_a: float, replicates_a, estimate_b: float, replicates_b, level: float = DEFAULT_LEVEL) -> dict:
    """mAP a - b with the percentile interval of its replicates; significant when 0 is outside it."""
    reps = np.asarray(replicates_a, dtype=np.float64) - np.asarray(replicates_b, dtype=np.float64)
    lo, hi = (float(x) for x in np.nanquantile(reps, [(1 - level) / 2, (1 + level) / 2]))
    return {"delta": estimate_a - estimate_b, "delta_lo": lo, "delta_hi": hi, "significant": lo > 0 or hi < 0}


def share_of_lead(student: tuple, base: tuple, teacher: tuple, level: float = DEFAULT_LEVEL) -> dict:
    """How much of the teacher's mAP lead over the base the student recovers: (s - b) / (t - b), with
    the percentile interval of that ratio over the runs' shared resamples. Each argument is
    (mAP, replicates) of one run of the same split; resamples where the teacher does not lead are
    left out (the ratio is undefined there), and their share is reported."""
    (s, rs), (b, rb), (t, rt) = ((e, np.asarray(r, dtype=np.float64)) for e, r in (student, base, teacher))
    lead = rt - rb
    ok = lead > 0
    ratios = (rs[ok] - rb[ok]) / lead[ok]
    lo, hi = (float(x) for x in np.nanquantile(ratios, [(1 - level) / 2, (1 + level) / 2]))
    return {"share": (s - b) / (t - b), "share_lo": lo, "share_hi": hi, "undefined": float(1 - ok.mean())}
