"""How much of its teacher's lead a single-vector method keeps (issue #14's measure).

    python -m measure.detail_share RESULTS... [--student detailclip] [--base clip] [--teacher cc-max] [--markdown]

For every split in the RESULTS folders (by content hash) with a run of the base and of the teacher,
prints for each student run (one per checkpoint) the share (student - base) / (teacher - base) of mAP,
overall and per scale bucket, with its 95% interval over the runs' shared bootstrap resamples.
`--markdown` prints one table instead, a row per split and student: the share overall and in the
smallest bucket (issue #28's table of shifts), beside the student's and the teacher's mAP.
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


def student_shares(runs: list[dict], student: str, base: str, teacher: str) -> list[dict]:
    """For each split (content hash) of `runs`, in their order, holding one base and one teacher run: per
    student run, {split, content, n_images, label, shares: {block: share_of_lead + student/base/teacher
    mAP}}, the blocks being overall and each bucket in order."""
    by_split: dict[str, list[dict]] = {}
    for record in runs:
        by_split.setdefault(record["split_hash"], []).append(record)
    found = []
    for content, split_runs in by_split.items():  # in the order of the runs (folders as given)
        def only(method):
            matches = [r for r in split_runs if r["method"] == method]
            return matches[0] if len(matches) == 1 else None

        base_run, teacher_run = only(base), only(teacher)
        students = [r for r in split_runs if r["method"] == student]
        if base_run is None or teacher_run is None or not students:
            continue
        for student_run, label in zip(students, run_labels(students)):
            shares = {}
            for name, block in blocks(student_run).items():
                b, t = blocks(base_run)[name], blocks(teacher_run)[name]
                share = share_of_lead(*((x["mAP"], x["mAP_replicates"]) for x in (block, b, t)))
                shares[name] = {**share, "student": block["mAP"], "base": b["mAP"], "teacher": t["mAP"]}
            found.append({"split": base_run["split"], "content": content, "n_images": base_run["n_images"],
                          "label": label, "shares": shares})
    return found


def share_cell(share: dict) -> str:
    return f"{share['share']:.1%} ({share['share_lo']:.1%}-{share['share_hi']:.1%})"


def markdown_table(rows: list[dict], student: str, teacher: str) -> str:
    """One row per (split, student): share of the teacher's lead overall and in the smallest bucket."""
    lines = [f"| split | images | {student} | share of {teacher}'s lead, overall | smallest bucket | share there | "
             f"mAP overall ({student} / {teacher}) | smallest ({student} / {teacher}) |",
             "|---|---:|---|---:|---|---:|---:|---:|"]
    for row in rows:
        overall, (smallest_name, smallest) = row["shares"]["overall"], list(row["shares"].items())[1]
        lines.append(f"| {row['split']} ({row['content'][:12]}) | {row['n_images']} | {row['label']} | "
                     f"{share_cell(overall)} | {smallest_name} | {share_cell(smallest)} | "
                     f"{overall['student']:.3f} / {overall['teacher']:.3f} | "
                     f"{smallest['student']:.3f} / {smallest['teacher']:.3f} |")
    return "\n".join(lines)


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--student", default="detailclip", show_default=True)
@click.option("--base", default="clip", show_default=True)
@click.option("--teacher", default="cc-max", show_default=True)
@click.option("--markdown", is_flag=True, help="one table: a row per split and student")
def main(results: tuple[Path, ...], student: str, base: str, teacher: str, markdown: bool) -> None:
    runs = [record for folder in results
            for record, _ in load_runs(folder, warn=lambda line: print(line, file=sys.stderr))]
    rows = student_shares(runs, student, base, teacher)
    if markdown:
        print(markdown_table(rows, student, teacher))
        return
    for i, row in enumerate(rows):
        if i == 0 or (rows[i - 1]["content"], rows[i - 1]["split"]) != (row["content"], row["split"]):
            print(f"split {row['split']} ({row['content'][:12]}), {row['n_images']} images: "
                  f"share of {teacher}'s lead over {base}")
        print(f"  {row['label']}")
        for name, share in row["shares"].items():
            print(f"    {name:<14} {share['share']:6.1%} ({share['share_lo']:.1%} to {share['share_hi']:.1%})"
                  f"   {student} {share['student']:.3f}, {base} {share['base']:.3f}, {teacher} {share['teacher']:.3f}")


if __name__ == "__main__":
    main()
