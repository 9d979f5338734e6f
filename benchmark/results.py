"""Run records: one JSON per (method, backbone, weights, data, protocol) run, plus optional saved scores.

    RESULTS/<stem>.json          the run record (schema below, `RUN_KEYS`); every metrics block holds
                                 mAP, its bootstrap interval and replicates (benchmark.evaluation)
    RESULTS/<stem>.scores.npz    with --save-scores: scores [Q, N], labels, classes, buckets, images

The stem ends with a hash of the run's identity (everything that determines its figures), so a
changed protocol, split or checkpoint never collides with an older run and `--skip-existing` can
decide from the file name alone.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from infra.errors import ToolkitError
from infra.atomic import atomic_path, write_json

from .evaluation import evaluate

SCHEMA_VERSION = 2  # 2: bootstrap intervals and replicates in every metrics block
RUN_KEYS = (
    "schema_version", "run_id", "task", "method", "method_settings", "backbone", "pretrained", "dataset", "split",
    "split_hash", "n_images", "protocol", "seed", "metrics", "cost", "software", "scores_file",
)  # fmt: skip
METRIC_KEYS = ("mAP", "mAP_ci", "mAP_replicates", "n_queries", "n_queries_without_positives", "n_positives", "n_negatives",
               "per_class")  # fmt: skip
COST_KEYS = ("vectors_per_image", "forward_passes_per_image", "gflops_per_image", "encode_images_per_s", "query_latency_ms")
SCORES_SUFFIX = ".scores.npz"


def run_id(identity: dict) -> str:
    """A short hash of everything that determines a run's figures."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.@+-]+", "_", str(text)).strip("_") or "none"


def run_stem(method: str, backbone: str, pretrained: str, split: str, rid: str) -> str:
    pretrained = Path(pretrained).stem if ("/" in pretrained or "\\" in pretrained) else pretrained
    return "__".join(_slug(x) for x in (method, backbone, pretrained, split, rid))


def software_versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("clevr-ds", "torch", "open_clip_torch", "numpy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


class NotARun(ToolkitError, ValueError):
    """A JSON file that is not a run record of this project, or is unreadable: skipped by the leaderboard."""


def _bad_figure(values) -> str | None:
    """The first value that is neither None nor a number in [0, 1], as text (None when all are fine)."""
    for value in values:
        if isinstance(value, list):
            bad = _bad_figure(value)
            if bad is not None:
                return bad
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            return repr(value)
    return None


def _figures(row: dict) -> list:
    return [v for k, v in row.items() if not k.startswith("n_") and k != "per_class"]


def validate_run(record: dict, source: str = "run") -> dict:
    """Check a run record's schema and that its figures are numbers in [0, 1].

    NotARun when the file is not a run of this schema; ValueError naming the first problem otherwise.
    """
    if not isinstance(record, dict):
        raise NotARun(f"{source}: not a JSON object")
    missing = [k for k in RUN_KEYS if k not in record]
    if missing:
        raise NotARun(f"{source}: not a benchmark run (missing {', '.join(missing)})")
    if record["schema_version"] != SCHEMA_VERSION:
        raise NotARun(f"{source}: schema version {record['schema_version']} (expected {SCHEMA_VERSION})")
    metrics = record["metrics"] if isinstance(record["metrics"], dict) else {}
    blocks = {"overall": metrics.get("overall"), **metrics.get("buckets", {})}
    for name, block in blocks.items():
        if not isinstance(block, dict) or any(k not in block for k in METRIC_KEYS):
            raise ValueError(f"{source}: metrics block {name!r} lacks {', '.join(METRIC_KEYS)}")
        bad = _bad_figure(_figures(block) + [_figures(row) for row in block["per_class"].values()])
        if bad is not None:
            raise ValueError(f"{source}: metrics block {name!r} holds {bad}, not a number in [0, 1]")
    if any(k not in record["cost"] for k in COST_KEYS):
        raise ValueError(f"{source}: cost lacks {', '.join(COST_KEYS)}")
    return record


def write_run(path: Path, record: dict) -> None:
    write_json(path, validate_run(record, str(path)), indent=1)


def load_run(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NotARun(f"{path}: unreadable run ({e})") from None
    return validate_run(record, str(path))


def load_runs(folder: Path, warn: Callable[[str], None] = print) -> list[tuple[dict, str]]:
    """(record, file name) of every run in `folder` (not recursive), sorted by file name.

    Other JSON files are skipped with one warning line each; a run with bad figures raises ValueError.
    """
    runs = []
    for path in sorted(Path(folder).glob("*.json")):
        if ".tmp-" in path.name:
            continue
        try:
            runs.append((load_run(path), path.name))
        except NotARun as e:
            warn(f"skipping {path.name}: {str(e).removeprefix(f'{path}: ')}")
    return runs


def save_scores(path: Path, scores, classes, images, bucket_names, buckets, overall, per_bucket, k: int) -> None:
    """The query x image similarity matrix with every label needed to recompute the run's metrics."""
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            scores=np.asarray(scores, dtype=np.float32),
            classes=np.asarray(classes),
            images=np.asarray(images),
            bucket_names=np.asarray(bucket_names),
            buckets=np.asarray(buckets, dtype=np.float64).reshape(-1, 2),
            labels_overall=overall.astype(np.int8),
            labels_buckets=per_bucket.astype(np.int8),
            k=np.int64(k),
        )


def recompute_metrics(path: Path) -> dict:
    """The `metrics` block of a run, recomputed from its saved scores alone."""
    with np.load(path) as z:
        return evaluate(
            z["scores"], z["classes"].tolist(), z["labels_overall"], z["bucket_names"].tolist(), z["labels_buckets"], int(z["k"])
        )
