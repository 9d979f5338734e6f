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
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from clevr_ds.schema import NUMBER, ListOf, Optional, problem, shortened
from infra.atomic import TMP_MARK, Writer, npz_writer, text_writer, write_together
from infra.errors import ToolkitError, first_line
from infra.jsonio import MiB, read_json
from infra.paths import confine, plain_name

from .evaluation import evaluate
from .uncertainty import DEFAULT_SEED

SCHEMA_VERSION = 2  # 2: bootstrap intervals and replicates in every metrics block
RUN_KEYS = (
    "schema_version", "run_id", "task", "method", "method_settings", "backbone", "pretrained", "dataset", "split",
    "split_hash", "n_images", "protocol", "seed", "metrics", "cost", "software", "scores_file",
)  # fmt: skip
METRIC_KEYS = ("mAP", "mAP_ci", "mAP_replicates", "n_queries", "n_queries_without_positives", "n_positives", "n_negatives",
               "per_class")  # fmt: skip
COST_KEYS = ("vectors_per_image", "forward_passes_per_image", "gflops_per_image", "encode_images_per_s", "query_latency_ms")
SCORES_SUFFIX = ".scores.npz"
SCORES_ARRAYS = ("scores", "classes", "images", "bucket_names", "buckets", "labels_overall", "labels_buckets", "k")
MAX_SCORES_BYTES = 1024 * MiB  # unpacked; COCO train (118k images x 80 classes) needs about 60 MiB


def run_id(identity: dict) -> str:
    """A short hash of everything that determines a run's figures."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.@+-]+", "_", str(text)).strip("_") or "none"


def run_stem(method: str, backbone: str, pretrained: str, split: str, rid: str) -> str:
    pretrained = Path(pretrained).stem if ("/" in pretrained or "\\" in pretrained) else pretrained
    return "__".join(_slug(x) for x in (method, backbone, pretrained, split, rid))


class NotARun(ToolkitError, ValueError):
    """A JSON file that is not a run record of this project, or is unreadable: skipped by the leaderboard."""


class BadRun(ToolkitError, ValueError):
    """A run record of this schema whose content is wrong (a field of the wrong type, a figure outside [0, 1])."""


class ScoresError(ToolkitError, ValueError):
    """A run's scores file that is missing, too large, corrupt or inconsistent."""


NULL = type(None)
MAYBE_NUMBER = (int, float, NULL)
FIGURE = re.compile(r"m?AP|(hit|precision)@[0-9]+|r_precision")  # a block's figures besides its counts
BLOCK_SPEC = {"mAP": MAYBE_NUMBER, "mAP_ci": (list, NULL), "mAP_replicates": ListOf(MAYBE_NUMBER), "n_queries": int,
              "n_queries_without_positives": int, "n_positives": int, "n_negatives": int, "per_class": dict}  # fmt: skip
CLASS_SPEC = {"AP": MAYBE_NUMBER, "n_positives": int}
RUN_SPEC = {
    "run_id": str, "task": str, "method": str, "method_settings": dict, "backbone": str, "pretrained": str,
    "dataset": str, "split": str, "split_hash": str, "n_images": int, "protocol": dict, "seed": int,
    "metrics": {"overall": dict, "buckets": dict, "bootstrap": {"interval": str, "resamples": int, "level": NUMBER}},
    "cost": {k: MAYBE_NUMBER for k in COST_KEYS}, "software": dict, "scores_file": (str, NULL),
}  # fmt: skip
OPTIONAL_SPEC = {  # fields that older runs (or other methods) lack; set, they have these types
    "method_settings": {"checkpoint": Optional(str), "checkpoint_sha256": Optional(str)},
    "cost": {"encode_device": Optional(str), "encode_threads": Optional(int)},
    "pretrained_id": Optional(str), "standard": Optional({"name": str, "split": str}),
    "cover_k": Optional({"rule": str, "input_size": int, "per_image": ListOf(int)}),  # an auto cover's
    "metrics": {"bootstrap": {"seed": Optional(int)}},
    "software": {"git": Optional({"commit": str, "dirty": bool})},
}  # fmt: skip


def _figure_problem(row: dict, where: str) -> str | None:
    """The first figure of `row` (mAP, AP, hit@k, ..., its interval and replicates) that is not None or in [0, 1]."""
    listed = [row.get("mAP_ci"), row.get("mAP_replicates")]
    values = [v for k, v in row.items() if FIGURE.fullmatch(k)] + [x for v in listed if isinstance(v, list) for x in v]
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            return f"{where} holds {shortened(value)}, not a number in [0, 1]"
    return None


def _row_problem(row, spec: dict, where: str) -> str | None:
    """The first problem of a metrics block or per-class row: not an object, a bad figure, a field of the wrong type."""
    return problem(row, dict, where) or _figure_problem(row, where) or problem(row, spec, where)


def _block_problem(block, where: str, resamples: int) -> str | None:
    """The first problem of a metrics block: its fields, interval, replicates (one per resample) and per-class rows."""
    found = _row_problem(block, BLOCK_SPEC, where)
    if found:
        return found
    if block["mAP_ci"] is not None and problem(block["mAP_ci"], ListOf(NUMBER, 2)):
        return f"{where}.mAP_ci: expected null or a list of 2 numbers, got {shortened(block['mAP_ci'])}"
    if len(block["mAP_replicates"]) != resamples:
        return f"{where}.mAP_replicates: {len(block['mAP_replicates'])} replicates, not one per resample ({resamples})"
    for name, row in block["per_class"].items():
        found = _row_problem(row, CLASS_SPEC, f"{where}.per_class.{name}")
        if found:
            return found
    return None


def _run_problem(record: dict) -> str | None:
    """The first field of a run record (known to hold every key) that breaks the schema."""
    found = problem(record, RUN_SPEC) or problem(record, OPTIONAL_SPEC)
    if found:
        return found
    metrics = record["metrics"]
    blocks = {"metrics.overall": metrics["overall"], **{f"metrics.buckets.{n}": b for n, b in metrics["buckets"].items()}}
    for where, block in blocks.items():
        found = _block_problem(block, where, metrics["bootstrap"]["resamples"])
        if found:
            return found
    return None


def validate_run(record, source: str = "run") -> dict:
    """Check a run record against the schema (RUN_SPEC; every field the leaderboard and report use).

    NotARun when the file is not a run of this schema version; BadRun naming the first problem
    otherwise. Every metrics block holds one replicate per bootstrap resample, so runs with the same
    bootstrap settings (one leaderboard group) pair up. `scores_file` is a plain file name.
    """
    if not isinstance(record, dict):
        raise NotARun(f"{source}: not a JSON object")
    missing = [k for k in RUN_KEYS if k not in record]
    if missing:
        raise NotARun(f"{source}: not a benchmark run (missing {', '.join(missing)})")
    if record["schema_version"] != SCHEMA_VERSION or isinstance(record["schema_version"], bool):
        raise NotARun(f"{source}: schema version {shortened(record['schema_version'])} (expected {SCHEMA_VERSION})")
    found = _run_problem(record)
    if found:
        raise BadRun(f"{source}: {found}")
    if record["scores_file"] is not None:
        plain_name(record["scores_file"], "scores_file", source)
    return record


def write_run(path: Path, record: dict, scores: Writer | None = None) -> None:
    """Write the run record at `path`, and with `scores` (a `scores_writer`) its scores file
    (record["scores_file"], beside it) first: both appear, or neither (infra.atomic.write_together)."""
    path = Path(path)
    text = json.dumps(validate_run(record, str(path)), indent=1) + "\n"
    writers = {path.parent / record["scores_file"]: scores} if scores is not None else {}
    write_together({**writers, path: text_writer(text)}, root=path.parent)


def load_run(path: Path, root: Path | None = None) -> dict:
    """A run record (infra.jsonio: bounded, inside `root` when given), checked by `validate_run`."""
    return validate_run(read_json(path, "run record", root=root, error=NotARun), str(path))


def load_runs(folder: Path, warn: Callable[[str], None] = print) -> list[tuple[dict, str]]:
    """(record, file name) of every run in `folder` (not recursive), sorted by file name.

    Other JSON files (and links leaving the folder) are skipped with one warning line each; a run
    that breaks the schema raises BadRun.
    """
    runs = []
    for path in sorted(Path(folder).glob("*.json")):
        if TMP_MARK in path.name:
            continue
        try:
            runs.append((load_run(path, root=folder), path.name))
        except NotARun as e:
            warn(f"skipping {path.name}: {str(e).removeprefix(f'{path}: ')}")
    return runs


def scores_writer(scores, classes, images, bucket_names, buckets, overall, per_bucket, k: int) -> Writer:
    """A writer of the query x image similarity matrix with every label needed to recompute the run's metrics."""
    arrays = {
        "scores": np.asarray(scores, dtype=np.float32), "classes": np.asarray(classes), "images": np.asarray(images),
        "bucket_names": np.asarray(bucket_names), "buckets": np.asarray(buckets, dtype=np.float64).reshape(-1, 2),
        "labels_overall": overall.astype(np.int8), "labels_buckets": per_bucket.astype(np.int8), "k": np.int64(k),
    }  # fmt: skip
    return npz_writer(arrays, compressed=True)


@dataclass(frozen=True)
class SavedScores:
    """A run's scores file: scores [Q, N], labels [Q, N] and [B, Q, N] (1 / 0 / -1), names and k."""

    scores: np.ndarray
    classes: list[str]
    images: list[str]
    bucket_names: list[str]
    buckets: np.ndarray  # [B, 2] rel_scale ranges
    labels_overall: np.ndarray
    labels_buckets: np.ndarray
    k: int


def _array(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    """One array of a scores file, its header checked before any memory is taken for it."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise ScoresError(f"{path}: scores file lacks the array {name}") from None
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    if dtype.hasobject or math.prod(shape) * dtype.itemsize > info.file_size:
        raise ScoresError(f"{path}: array {name} of the scores file is not plain data of its stated shape")
    with archive.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _expect(array: np.ndarray, name: str, kinds: str, shape: tuple, path: Path) -> np.ndarray:
    if array.dtype.kind not in kinds or array.shape != shape:
        raise ScoresError(f"{path}: array {name} of the scores file is {array.dtype} {array.shape}, expected shape {shape}")
    return array


def _labels(array: np.ndarray, name: str, shape: tuple, path: Path) -> np.ndarray:
    if not np.isin(_expect(array, name, "iu", shape, path), (-1, 0, 1)).all():
        raise ScoresError(f"{path}: array {name} of the scores file holds labels other than 1, 0, -1")
    return array.astype(np.int8)


def _saved_scores(a: dict[str, np.ndarray], path: Path) -> SavedScores:
    """The arrays of a scores file, their kinds, shapes and values checked against each other."""
    if a["scores"].ndim != 2 or a["bucket_names"].ndim != 1:
        raise ScoresError(f"{path}: arrays scores and bucket_names of the scores file must be 2-D and 1-D")
    (q, n), b = a["scores"].shape, len(a["bucket_names"])
    scores = _expect(a["scores"], "scores", "fiu", (q, n), path).astype(np.float64)
    if not np.isfinite(scores).all() or int(_expect(a["k"], "k", "iu", (), path)) < 1:
        raise ScoresError(f"{path}: the scores file holds scores that are not finite or a k below 1")
    return SavedScores(
        scores, _expect(a["classes"], "classes", "U", (q,), path).tolist(), _expect(a["images"], "images", "U", (n,), path).tolist(),
        _expect(a["bucket_names"], "bucket_names", "U", (b,), path).tolist(), _expect(a["buckets"], "buckets", "fiu", (b, 2), path),
        _labels(a["labels_overall"], "labels_overall", (q, n), path), _labels(a["labels_buckets"], "labels_buckets", (b, q, n), path),
        int(a["k"]),
    )  # fmt: skip


def load_scores(path: Path, root: Path | None = None) -> SavedScores:
    """A run's scores file (inside `root` when given), bounded in size and checked; ScoresError (one line) otherwise."""
    path = Path(path)
    if root is not None:
        confine(root, path)
    try:
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_SCORES_BYTES:
                raise ScoresError(f"{path}: scores file larger than the limit of {MAX_SCORES_BYTES // MiB} MiB unpacked")
            arrays = {name: _array(archive, name, path) for name in SCORES_ARRAYS}
    except ScoresError:
        raise
    except FileNotFoundError:
        raise ScoresError(f"missing scores file {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        # a damaged archive raises any of these (RuntimeError: encrypted, NotImplementedError: unknown compression)
        raise ScoresError(f"{path}: corrupt scores file ({first_line(e)})") from None
    return _saved_scores(arrays, path)


def recompute_metrics(z: SavedScores, bootstrap: dict) -> dict:
    """The `metrics` block of a run, recomputed from its saved scores with its bootstrap settings (resamples,
    level and seed: the default seed where a run does not record one)."""
    return evaluate(z.scores, z.classes, z.labels_overall, z.bucket_names, z.labels_buckets, z.k, bootstrap["resamples"],
                    bootstrap.get("seed", DEFAULT_SEED), bootstrap["level"])  # fmt: skip
