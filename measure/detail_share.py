"""How much of its teacher's lead a single-vector method keeps (issue #14's measure).

    python -m measure.detail_share RESULTS [--student detailclip] [--base clip] [--teacher cc-max]

For every split in RESULTS (by content hash) with a run of the base and of the teacher, prints for
each student run (one per checkpoint) the share (student - base) / (teacher - base) of mAP, overall
and per scale bucket, with its 95% interval over the runs' shared bootstrap resamples.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from benchmark.leaderboard import run_labels
from benchmark.results import load_runs
from benchmark.uncertainty import share_of_lead


def blocks(record: dict) -> dict[str, dict]:
    return {"overall": record["metrics"]["overall"], **record["metrics"]["buckets"]}


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--student", default="detailclip", show_default=True)
@click.option("--base", default="clip", show_default=True)
@click.option("--teacher", default="cc-max", show_default=True)
def main(results: Path, student: str, base: str, teacher: str) -> None:
    by_split: dict[str, list[tuple[dict, str]]] = {}
    for record, source in load_runs(results, warn=lambda line: print(line, file=sys.stderr)):
        by_split.setdefault(record["split_hash"], []).append((record, source))
    for content, runs in sorted(by_split.items()):
        def only(method):
            found = [r for r, _ in runs if r["method"] == method]
            return found[0] if len(found) == 1 else None

        base_run, teacher_run = only(base), only(teacher)
        students = [r for r, _ in runs if r["method"] == student]
        if base_run is None or teacher_run is None or not students:
            continue
        print(f"split {base_run['split']} ({content[:12]}), {base_run['n_images']} images: "
              f"share of {teacher}'s lead over {base}")
        for student_run, label in zip(students, run_labels(students)):
            print(f"  {label}")
            for name, block in blocks(student_run).items():
                b, t = blocks(base_run)[name], blocks(teacher_run)[name]
                share = share_of_lead(*((x["mAP"], x["mAP_replicates"]) for x in (block, b, t)))
                print(f"    {name:<14} {share['share']:6.1%} ({share['share_lo']:.1%} to {share['share_hi']:.1%})"
                      f"   {student} {block['mAP']:.3f}, {base} {b['mAP']:.3f}, {teacher} {t['mAP']:.3f}")


if __name__ == "__main__":
    main()
