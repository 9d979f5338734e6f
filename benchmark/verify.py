"""Verified runs: a run's figures follow from its saved scores, its split is the standard split it names,
its weights and checkpoint are the files it names.

`verify_run` answers "verified", "mismatched: WHY" (a check found the record wrong) or "unverifiable: WHY"
(a check could not be made: no saved scores, a weights file that is not on this machine, ...), WHY one
line naming files by name only (no machine's folders in a published table); a mismatch outranks an
unverifiable check. Relative weights and checkpoint paths are read from the working folder, as bench
read them. Costs and speeds are measurements, not consequences of the scores: they are not checked.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from clevr_ds.dataset import DATASET_NAME
from clevr_ds.schema import shortened
from clevr_ds.standards import STANDARDS, published
from infra.errors import first_line
from infra.paths import UnsafePathError, inside

from .leaderboard import file_name
from .results import ScoresError, load_scores, recompute_metrics

VERIFIED, MISMATCHED, UNVERIFIABLE = "verified", "mismatched", "unverifiable"
TOLERANCE = 1e-5  # a recomputed figure may differ by float rounding (replicates are stored to 6 decimals)

Finding = tuple[str, str] | None  # (MISMATCHED or UNVERIFIABLE, why) or None: the check passed


def _same(recorded, computed) -> bool:
    numbers = (int, float)
    if isinstance(recorded, numbers) and isinstance(computed, numbers) and not isinstance(recorded, bool):
        return math.isclose(recorded, computed, rel_tol=0, abs_tol=TOLERANCE)
    return recorded == computed


def difference(recorded, computed, where: str) -> str | None:
    """The first place where `recorded` differs from `computed` ('metrics.overall.mAP: recorded 0.61, ...'), or None."""
    if isinstance(computed, dict) and isinstance(recorded, dict) and recorded.keys() == computed.keys():
        found = (difference(recorded[k], computed[k], f"{where}.{k}") for k in computed)
    elif isinstance(computed, list) and isinstance(recorded, list) and len(recorded) == len(computed):
        found = (difference(r, c, f"{where}[{i}]") for i, (r, c) in enumerate(zip(recorded, computed)))
    else:
        found = iter(() if _same(recorded, computed) else
                     (f"{where}: recorded {shortened(recorded)}, its saved scores give {shortened(computed)}",))  # fmt: skip
    return next((d for d in found if d), None)


def _figures(record: dict, path: Path) -> Finding:
    """Every figure overall and per bucket (mAP, interval, replicates, hit@k, ..., per class, counts) and the
    number of images, recomputed from the saved scores and labels."""
    name = record["scores_file"]
    if name is None:
        return UNVERIFIABLE, "no saved scores (bench saves them unless --no-save-scores)"
    try:
        scores_path = inside(path.parent, name, source=path)
        saved = load_scores(scores_path)
    except (ScoresError, UnsafePathError) as e:
        return UNVERIFIABLE, first_line(e).replace(f"{path.parent}{os.sep}", "").replace(str(path.parent), "its folder")
    if len(saved.images) != record["n_images"]:
        return MISMATCHED, f"n_images: recorded {record['n_images']}, its saved scores rank {len(saved.images)} images"
    computed = recompute_metrics(saved, record["metrics"]["bootstrap"])
    found = difference({k: record["metrics"][k] for k in ("overall", "buckets")},
                       {k: computed[k] for k in ("overall", "buckets")}, "metrics")  # fmt: skip
    return (MISMATCHED, found) if found else None


def _split(record: dict, path: Path) -> Finding:
    """The split's content hash against the published hash of the standard split the run names."""
    if "standard" not in record:  # a run from before runs named their standard split
        if published(record["split_hash"]) or record["dataset"] != DATASET_NAME:
            return None
        return UNVERIFIABLE, "the run predates runs naming their standard split (run bench again)"
    claim = record["standard"]
    if claim is None:
        return None
    standard = STANDARDS.get(claim["name"])
    if standard is None:
        return UNVERIFIABLE, f"the run names the standard split {claim['name']!r}, unknown to this version"
    expected = standard.hashes.get(claim["split"])
    if not expected or record["split_hash"] in expected.values():
        return None  # a standard without a published hash has nothing to compare
    return MISMATCHED, (f"split content {record['split_hash'][:12]} is none of the published {standard.title} "
                        f"{claim['split']} ({standard.listed_hashes(claim['split'], 12)})")  # fmt: skip


def _weights(record: dict, path: Path) -> Finding:
    """The content hash of the backbone's weights (detailclip.backbones.pretrained_id) against the one the run names."""
    from detailclip.backbones import BackboneError, pretrained_id

    named, weights = record.get("pretrained_id"), record["pretrained"]
    if named is None:
        return UNVERIFIABLE, "the run names no content hash of its weights (pretrained_id)"
    try:
        found = pretrained_id(weights)
    except BackboneError:
        return UNVERIFIABLE, f"the built-in weights {weights} are not here"
    except OSError as e:
        return UNVERIFIABLE, f"weights {file_name(weights)}: {e.strerror}"
    if found == named:
        return None  # also an open_clip tag, which names itself, and random weights ("none")
    if found == weights:  # no file to hash
        return UNVERIFIABLE, f"weights file {file_name(weights)} is not here"
    return MISMATCHED, f"weights {file_name(weights)} are {found}, the run names {named}"


def _checkpoint(record: dict, path: Path) -> Finding:
    """The SHA-256 of the fusion checkpoint a run names against the one it recorded."""
    from .methods.detailclip import file_sha256

    settings = record["method_settings"]
    checkpoint = settings.get("checkpoint")
    if not checkpoint:
        return None
    digest, name = settings.get("checkpoint_sha256"), file_name(checkpoint)
    if digest is None:
        return UNVERIFIABLE, f"the run names no content hash of checkpoint {name}"
    if not Path(checkpoint).is_file():
        return UNVERIFIABLE, f"checkpoint {name} is not here"
    try:
        found = file_sha256(Path(checkpoint).resolve())
    except OSError as e:
        return UNVERIFIABLE, f"checkpoint {name}: {e.strerror}"
    return None if found == digest else (MISMATCHED, f"checkpoint {name} has content {found[:12]}, the run names {digest[:12]}")


CHECKS = (_figures, _split, _weights, _checkpoint)


def verify_run(record: dict, path: Path) -> str:
    """The verdict on the run record read from `path` (its scores file lies beside it)."""
    path = Path(path).absolute()  # its folder, removed from the lines of errors, is then never "."
    findings = [found for check in CHECKS if (found := check(record, path))]
    for kind in (MISMATCHED, UNVERIFIABLE):
        why = next((why for k, why in findings if k == kind), None)
        if why:
            return f"{kind}: {why}"
    return VERIFIED


def verify_runs(records: list[tuple[dict, str]], folder: Path) -> dict[str, str]:
    """File name -> verdict of each (record, file name) of `folder` (benchmark.results.load_runs)."""
    return {name: verify_run(record, Path(folder) / name) for record, name in records}


def summary(verdicts: dict[str, str]) -> str:
    """One line: how many runs are verified, mismatched and unverifiable."""
    kinds = [verdict.partition(":")[0] for verdict in verdicts.values()]
    return (f"{kinds.count(VERIFIED)} of {len(kinds)} run(s) verified, {kinds.count(MISMATCHED)} mismatched, "
            f"{kinds.count(UNVERIFIABLE)} unverifiable")
