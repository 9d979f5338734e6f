"""`python -m measure.detail_share`: the share of a teacher's lead a single-vector run keeps, per split, over
several results folders, as text or one markdown table (issue #28 item 4)."""

from __future__ import annotations

from click.testing import CliRunner

from benchmark.results import write_run
from measure.detail_share import main
from tests.test_benchmark_leaderboard import make_run, records


def _folder(path, split_hash: str, student: float):
    path.mkdir()
    runs = [make_run("clip", 1.0, 1, split_hash=split_hash), make_run("cc-cal", 4.0, 2, split_hash=split_hash),
            make_run("detailclip", student, 3, split_hash=split_hash, checkpoint="/x/fusion.pt")]
    for run in runs:
        write_run(path / f"{run['run_id']}.json", records(run)[0][0])
    return runs


def test_one_table_row_per_split_with_the_share_of_the_teachers_lead(tmp_path):
    first = _folder(tmp_path / "a", "ab" * 32, 2.5)
    _folder(tmp_path / "b", "cd" * 32, 3.0)
    (tmp_path / "empty").mkdir()
    done = CliRunner().invoke(main, [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "empty"), "--teacher",
                                     "cc-cal", "--markdown"])  # fmt: skip
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].startswith("| split | images | detailclip | share of cc-cal's lead, overall | smallest bucket |")
    assert len(lines) == 4 and lines[2].startswith("| test (abababababab) | 30 | detailclip (fusion.pt) |")
    clip, teacher, student = (run["metrics"]["overall"]["mAP"] for run in first)
    share = (student - clip) / (teacher - clip)
    assert 0 < share < 1 and f"| {share:.1%} (" in lines[2]
    smallest = [run["metrics"]["buckets"]["small"]["mAP"] for run in first]
    assert f"| small | {(smallest[2] - smallest[0]) / (smallest[1] - smallest[0]):.1%} (" in lines[2]
    assert f"| {student:.3f} / {teacher:.3f} |" in lines[2]


def test_text_names_each_split_once_and_skips_splits_without_the_teacher(tmp_path):
    _folder(tmp_path / "a", "ab" * 32, 2.5)
    done = CliRunner().invoke(main, [str(tmp_path / "a"), "--teacher", "cc-cal"])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0] == "split test (abababababab), 30 images: share of cc-cal's lead over clip"
    assert [line.split()[0] for line in lines[2:]] == ["overall", "small", "large"]
    assert CliRunner().invoke(main, [str(tmp_path / "a")]).output == ""  # no cc-max run: nothing to share


def test_a_missing_folder_is_refused_in_one_line(tmp_path):
    done = CliRunner().invoke(main, [str(tmp_path / "absent")])
    assert done.exit_code == 2 and "does not exist" in done.output
