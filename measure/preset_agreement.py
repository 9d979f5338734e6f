"""Do two renders of the same scenes (e.g. with the `fast` and the `default` preset) give the same figures?

    python -m measure.preset_agreement RESULTS_A RESULTS_B [--level 0.95]

Pairs every run of one method (same settings, backbone and weights) in the two results folders
(bench writes its scores files by default), keeps the images both runs scored (by file name; their
labels must agree, i.e. the scenes are the same), and prints per block (overall and each scale
bucket) the mAP of A and of B with their bootstrap intervals and the paired difference A - B with
the interval of its replicates: the two evaluations share their resamples of the common images,
so per-image difficulty cancels. "differs" marks a difference whose interval excludes 0; at the
5% level about one block in twenty differs by chance alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from benchmark.evaluation import evaluate
from benchmark.results import load_runs
from benchmark.uncertainty import DEFAULT_LEVEL, paired_difference


def runs(folder: Path) -> dict[tuple, Path]:
    """(method, its settings, backbone, weights) -> scores file of each run in `folder` that saved one."""
    out = {}
    for record, _ in load_runs(folder, warn=lambda line: print(line, file=sys.stderr)):
        if record.get("scores_file"):
            settings = {k: v for k, v in record["method_settings"].items() if k != "checkpoint"}  # a path; its sha256 stays
            key = (record["method"], json.dumps(settings, sort_keys=True), record["backbone"], record["pretrained_id"])
            out[key] = folder / record["scores_file"]
    return out


def on_images(path: Path, names: list[str]) -> dict:
    """A scores file's arrays restricted to the images `names`, in that order."""
    with np.load(path) as z:
        where = {name: i for i, name in enumerate(z["images"].tolist())}
        idx = np.array([where[name] for name in names])
        return {"scores": z["scores"][:, idx], "classes": z["classes"].tolist(), "overall": z["labels_overall"][:, idx],
                "bucket_names": z["bucket_names"].tolist(), "per_bucket": z["labels_buckets"][:, :, idx], "k": int(z["k"])}


def common_images(a: Path, b: Path) -> list[str]:
    with np.load(a) as za, np.load(b) as zb:
        return sorted(set(za["images"].tolist()) & set(zb["images"].tolist()))


def compare(a: Path, b: Path, level: float) -> tuple[list[tuple], int]:
    """Rows (block, mAP a, interval a, mAP b, interval b, paired difference) on the images a and b share, and their number."""
    names = common_images(a, b)
    x, y = on_images(a, names), on_images(b, names)
    if x["classes"] != y["classes"] or x["bucket_names"] != y["bucket_names"]:
        raise SystemExit(f"{a} and {b}: other classes or buckets")
    if not (np.array_equal(x["overall"], y["overall"]) and np.array_equal(x["per_bucket"], y["per_bucket"])):
        raise SystemExit(f"{a} and {b}: the labels of their common images differ: not the same scenes")
    ea, eb = (evaluate(r["scores"], r["classes"], r["overall"], r["bucket_names"], r["per_bucket"], r["k"], level=level)
              for r in (x, y))
    rows = []
    for block in ["overall", *x["bucket_names"]]:
        ba, bb = (e["overall"] if block == "overall" else e["buckets"][block] for e in (ea, eb))
        reps = [np.array([np.nan if v is None else v for v in blk["mAP_replicates"]]) for blk in (ba, bb)]
        diff = paired_difference(ba["mAP"], reps[0], bb["mAP"], reps[1], level)
        rows.append((block, ba["mAP"], ba["mAP_ci"], bb["mAP"], bb["mAP_ci"], diff))
    return rows, len(names)


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("results_a", type=click.Path(path_type=Path))
@click.argument("results_b", type=click.Path(path_type=Path))
@click.option("--level", type=float, default=DEFAULT_LEVEL, show_default=True)
def main(results_a: Path, results_b: Path, level: float) -> None:
    ra, rb = runs(results_a), runs(results_b)
    shared = sorted(set(ra) & set(rb))
    if not shared:
        raise SystemExit("no method was run with the same settings and weights in both folders")
    print(f"A = {results_a}, B = {results_b}; mAP (interval), paired A - B (interval), level {level}")
    differing = total = 0
    for key in shared:
        rows, n = compare(ra[key], rb[key], level)
        print(f"\n{key[0]} ({n} common images)")
        for block, ma, ca, mb, cb, d in rows:
            flag = "differs" if d["significant"] else "same"
            differing, total = differing + d["significant"], total + 1
            print(f"  {block:<14} A {ma:.3f} ({ca[0]:.3f}-{ca[1]:.3f})  B {mb:.3f} ({cb[0]:.3f}-{cb[1]:.3f})  "
                  f"A-B {d['delta']:+.3f} ({d['delta_lo']:+.3f} to {d['delta_hi']:+.3f})  {flag}")
    print(f"\n{differing} of {total} blocks differ at level {level}")


if __name__ == "__main__":
    main()
