"""`python -m measure.teacher_grid`: its cc-cal row at the registry's settings is the bench's cc-cal run."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main as cli_main
from measure.teacher_grid import main


def test_the_grid_row_at_the_method_s_settings_is_bench_s_run(tiny_dataset, tmp_path):
    from benchmark.methods.calibrated import CCCalibrated

    cache = tmp_path / "cache"
    args = ["--data", tiny_dataset, "--split", "val", "--cover-k", "2", "--temperatures", f"{CCCalibrated.temperature},9",
            "--penalties", f"0,{CCCalibrated.level_penalty}", "--cache-dir", cache]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| cc") or line.startswith("| grid")]
    assert [r.split(" | ")[0] for r in rows][:2] == ["| cc-max", "| grid-max"] and len(rows) == 2 + 2 * 2
    shipped = f"| cc-cal, temperature {CCCalibrated.temperature:g}, level penalty {CCCalibrated.level_penalty:g} |"
    grid_map = float(next(r for r in rows if r.startswith(shipped)).split(" | ")[1])
    out = tmp_path / "results"
    code = cli_main(["bench", "--data", str(tiny_dataset), "--split", "val", "--model", "cc-cal", "--cover-k", "2",
                     "--cache-dir", str(cache), "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    record = json.loads(next(out.glob("cc-cal__*.json")).read_text())
    assert round(record["metrics"]["overall"]["mAP"], 3) == grid_map


def test_cc_fine_rescores_the_cover_teachers_and_keeps_the_grid(tiny_dataset, tmp_path):
    args = ["--data", tiny_dataset, "--split", "val", "--cover-k", "2", "--temperatures", "2", "--penalties", "0.025",
            "--cache-dir", tmp_path / "cache"]  # fmt: skip
    tables = {}
    for scheme in ("cc", "cc-fine"):
        result = CliRunner().invoke(main, [str(a) for a in args] + ["--scheme", scheme])
        assert result.exit_code == 0, result.output
        tables[scheme] = {r.split(" | ")[0][2:]: r.split(" | ")[1:] for r in result.output.splitlines()
                          if r.startswith("| cc") or r.startswith("| grid")}  # fmt: skip
    assert list(tables["cc-fine"]) == ["cc-max over cc-fine", "grid-max",
                                       "cc-cal over cc-fine, temperature 2, level penalty 0.025"]
    assert tables["cc-fine"]["grid-max"] == tables["cc"]["grid-max"]
    schemes = {json.loads((folder / "key.json").read_text())["scheme"] for folder in (tmp_path / "cache").iterdir()}
    assert schemes == {"cc", "cc-fine", "grid"}  # the cover teachers read their own windows
