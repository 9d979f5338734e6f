"""How much of its teacher's lead a single-vector method keeps (issue #14's measure).

    python benchmarks/detail_share.py RESULTS [--student detailclip] [--base clip] [--teacher cc-max]

For every split in RESULTS (by content hash) with a run of the base and of the teacher, prints for
each student run (one per checkpoint) the share (student - base) / (teacher - base) of mAP, overall
and per scale bucket, with its 95% interval over the runs' shared bootstrap resamples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.leaderboard import run_labels  # noqa: E402
from benchmark.results import load_runs  # noqa: E402
from benchmark.uncertainty import share_of_lead  # noqa: E402


def blocks(record: dict) -> dict[str, dict]:
    return {"overall": record["metrics"]["overall"], **record["metrics"]["buckets"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--student", default="detailclip")
    parser.add_argument("--base", default="clip")
    parser.add_argument("--teacher", default="cc-max")
    args = parser.parse_args()
    by_split: dict[str, list[tuple[dict, str]]] = {}
    for record, source in load_runs(args.results, warn=lambda line: print(line, file=sys.stderr)):
        by_split.setdefault(record["split_hash"], []).append((record, source))
    for content, runs in sorted(by_split.items()):
        def only(method):
            found = [r for r, _ in runs if r["method"] == method]
            return found[0] if len(found) == 1 else None

        base, teacher = only(args.base), only(args.teacher)
        students = [r for r, _ in runs if r["method"] == args.student]
        if base is None or teacher is None or not students:
            continue
        print(f"split {base['split']} ({content[:12]}), {base['n_images']} images: "
              f"share of {args.teacher}'s lead over {args.base}")
        for student, label in zip(students, run_labels(students)):
            print(f"  {label}")
            for name, block in blocks(student).items():
                b, t = blocks(base)[name], blocks(teacher)[name]
                share = share_of_lead(*((x["mAP"], x["mAP_replicates"]) for x in (block, b, t)))
                print(f"    {name:<14} {share['share']:6.1%} ({share['share_lo']:.1%} to {share['share_hi']:.1%})"
                      f"   {args.student} {block['mAP']:.3f}, {args.base} {b['mAP']:.3f}, {args.teacher} {t['mAP']:.3f}")


if __name__ == "__main__":
    main()
