"""Metrics of one run: overall and per scale bucket, each with per-class figures and counts."""

from __future__ import annotations

import numpy as np

from .metrics import Ranking, per_query, summarise


def hit_ks_for(k: int) -> tuple[int, ...]:
    """CLIP-style hit@1, hit@5 and hit@k."""
    return tuple(sorted({1, 5, k}))


def evaluate(scores, classes: list[str], overall: np.ndarray, bucket_names: list[str], per_bucket: np.ndarray, k: int) -> dict:
    """`scores` [Q, N]; `overall` [Q, N] and `per_bucket` [B, Q, N] labels (1 / 0 / -1)."""

    ranking = Ranking(scores)

    def block(labels) -> dict:
        qm = ranking.metrics(labels, hit_ks=hit_ks_for(k), precision_k=k)
        return {**summarise(qm), "per_class": per_query(qm, classes)}

    return {"overall": block(overall), "buckets": {name: block(labels) for name, labels in zip(bucket_names, per_bucket)}}
