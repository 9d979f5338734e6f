"""Ranking metrics for multi-positive text-to-image retrieval, vectorised over queries and images.

Labels per (query, image): 1 = relevant, 0 = irrelevant, -1 = left out of the ranking (IGNORE).

Ties are broken pessimistically: among images with equal scores the irrelevant ones rank first.
The rule is deterministic, does not depend on the order of the images, and gives a method that
scores everything alike the worst figures instead of a lucky order. (scikit-learn's average
precision treats a run of tied scores as one threshold instead, so it is never below ours and
equals ours when no positive ties a negative.)

Per query, with positives at ranks r_1 < ... < r_R among the n ranked images:
    AP           = mean_j  j / r_j
    hit@k        = 1 if r_1 <= k                 (CLIP-style recall@k: any relevant image in the top k)
    precision@k  = #{j : r_j <= k} / k           (denominator k even when n < k, as trec_eval)
    R-precision  = #{j : r_j <= R} / R
A query with no positive has no figures (NaN); summaries leave it out of the mean and count it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


@dataclass(frozen=True)
class QueryMetrics:
    """Per-query figures, each an array of shape [Q] (NaN where the query has no positive)."""

    ap: np.ndarray
    hits: dict[int, np.ndarray]
    precision_k: int
    precision: np.ndarray
    r_precision: np.ndarray
    n_positives: np.ndarray
    n_negatives: np.ndarray

    def figures(self) -> dict[str, np.ndarray]:
        """Metric name -> per-query values, in reporting order."""
        out = {"mAP": self.ap}
        out.update({f"hit@{k}": v for k, v in self.hits.items()})
        out[f"precision@{self.precision_k}"] = self.precision
        out["r_precision"] = self.r_precision
        return out


class Ranking:
    """The images of each query sorted by score once; metrics for any number of label matrices.

    Under the pessimistic rule a relevant image's rank is (relevant images ordered up to it) +
    (irrelevant images scoring at least as high), so one sort per query serves every
    label matrix (overall and each bucket): only cumulative counts differ between them. The sort is
    stable (ties in image order), which no figure depends on but the bootstrap's weighted AP does.
    """

    def __init__(self, scores):
        scores = torch.as_tensor(scores)
        if scores.dim() != 2:
            raise ValueError(f"scores must be [Q, N], got {tuple(scores.shape)}")
        if not scores.is_floating_point():
            scores = scores.double()
        if not torch.isfinite(scores).all():
            raise ValueError("scores must be finite")
        self.shape = tuple(scores.shape)
        ranked, self.order = torch.sort(scores, dim=1, descending=True, stable=True)
        # tie_end[:, t]: how many images score at least ranked[:, t] (the end of t's run of ties).
        n = self.shape[1]
        is_end = torch.ones_like(ranked, dtype=torch.bool)
        is_end[:, :-1] = ranked[:, 1:] != ranked[:, :-1]
        ends = torch.where(is_end, torch.arange(1, n + 1), n)
        self.tie_end = ends.flip(1).cummin(1).values.flip(1)

    def metrics(self, labels, hit_ks=(1, 5, 10), precision_k: int = 10) -> QueryMetrics:
        """All per-query figures for [Q, N] labels (1 / 0 / -1) of the ranked scores."""
        labels = torch.as_tensor(labels, dtype=torch.int8)
        if tuple(labels.shape) != self.shape:
            raise ValueError(f"scores {self.shape} and labels {tuple(labels.shape)} must be equal [Q, N] shapes")
        if precision_k < 1 or any(k < 1 for k in hit_ks):
            raise ValueError("k must be >= 1")
        ranked = labels.gather(1, self.order)
        positive = ranked == POSITIVE
        tp = positive.cumsum(1, dtype=torch.float32)  # exact: counts stay far below 2**24
        negatives_above = (ranked == NEGATIVE).cumsum(1, dtype=torch.float32).gather(1, self.tie_end - 1)
        rank = torch.where(positive, tp + negatives_above, 0.0)
        n_pos = tp[:, -1].double() if self.shape[1] else torch.zeros(self.shape[0], dtype=torch.float64)
        has_pos = n_pos > 0
        # Ranks of relevant images grow along the sorted order; carried forward they are sorted.
        last_rank = rank.cummax(1).values.contiguous()
        tp_padded = torch.cat([torch.zeros(self.shape[0], 1), tp], dim=1)

        def tp_at(k) -> torch.Tensor:
            """Relevant images in the top k (k: an int or a [Q] tensor)."""
            k = torch.as_tensor(k, dtype=torch.float32).expand(self.shape[0]).reshape(-1, 1).contiguous()
            return tp_padded.gather(1, torch.searchsorted(last_rank, k, right=True))[:, 0].double()

        def masked(x) -> np.ndarray:
            return torch.where(has_pos, x.double(), float("nan")).numpy()

        ap = torch.where(positive, tp.double() / rank, 0.0).sum(1) / n_pos.clamp(min=1)
        return QueryMetrics(
            ap=masked(ap),
            hits={k: masked((tp_at(k) > 0).double()) for k in hit_ks},
            precision_k=precision_k,
            precision=masked(tp_at(precision_k) / precision_k),
            r_precision=masked(tp_at(n_pos) / n_pos.clamp(min=1)),
            n_positives=n_pos.long().numpy(),
            n_negatives=(labels == NEGATIVE).sum(1).long().numpy(),
        )


def query_metrics(scores, labels, hit_ks=(1, 5, 10), precision_k: int = 10) -> QueryMetrics:
    """All per-query figures for a [Q, N] score matrix and its [Q, N] labels."""
    return Ranking(scores).metrics(labels, hit_ks, precision_k)


def summarise(qm: QueryMetrics) -> dict:
    """Means over the queries that have positives, with the counts behind them."""
    valid = qm.n_positives > 0
    out = {name: (float(values[valid].mean()) if valid.any() else None) for name, values in qm.figures().items()}
    out.update(
        n_queries=int(valid.sum()),
        n_queries_without_positives=int((~valid).sum()),
        n_positives=int(qm.n_positives.sum()),
        n_negatives=int(qm.n_negatives.sum()),
    )
    return out


def per_query(qm: QueryMetrics, names: list[str]) -> dict[str, dict]:
    """Per-query figures keyed by query name (None where the query has no positive); AP, not mAP."""
    figures = {("AP" if m == "mAP" else m): v for m, v in qm.figures().items()}
    out = {}
    for i, name in enumerate(names):
        row = {m: (None if np.isnan(v[i]) else float(v[i])) for m, v in figures.items()}
        row.update(n_positives=int(qm.n_positives[i]), n_negatives=int(qm.n_negatives[i]))
        out[name] = row
    return out
