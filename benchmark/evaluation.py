"""Metrics of one run: overall and per scale bucket, each with per-class figures, counts and a bootstrap interval."""

from __future__ import annotations

import numpy as np

from .metrics import Ranking, per_query, summarise
from .uncertainty import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_map, interval

REPLICATE_DECIMALS = 6


def hit_ks_for(k: int) -> tuple[int, ...]:
    """CLIP-style hit@1, hit@5 and hit@k."""
    return tuple(sorted({1, 5, k}))


def bootstrap_settings(n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL) -> dict:
    """What a run records about its intervals; runs with equal settings on one split share their resamples."""
    return {"method": "bootstrap over images (multinomial counts)", "interval": "bias-corrected percentile",
            "resamples": n_resamples, "seed": seed, "level": level}  # fmt: skip


def evaluate(scores, classes: list[str], overall: np.ndarray, bucket_names: list[str], per_bucket: np.ndarray, k: int,
             n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL) -> dict:  # fmt: skip
    """`scores` [Q, N]; `overall` [Q, N] and `per_bucket` [B, Q, N] labels (1 / 0 / -1).

    Each block carries `mAP_ci` ([lo, hi]) and `mAP_replicates` (mAP in each resample, None where
    undefined), which pair the run with any other run of the same split (benchmark.uncertainty).
    """
    ranking = Ranking(scores)
    labels = [overall, *per_bucket]
    replicates = bootstrap_map(ranking, labels, n_resamples, seed)

    def block(labels, reps) -> dict:
        qm = ranking.metrics(labels, hit_ks=hit_ks_for(k), precision_k=k)
        out = summarise(qm)
        defined = out["mAP"] is not None and not np.isnan(reps).all()
        out["mAP_ci"] = interval(out["mAP"], reps, level) if defined else None
        out["mAP_replicates"] = [None if np.isnan(r) else round(float(r), REPLICATE_DECIMALS) for r in reps]
        return {**out, "per_class": per_query(qm, classes)}

    blocks = [block(lab, reps) for lab, reps in zip(labels, replicates)]
    return {"overall": blocks[0], "buckets": dict(zip(bucket_names, blocks[1:])),
            "bootstrap": bootstrap_settings(n_resamples, seed, level)}  # fmt: skip
