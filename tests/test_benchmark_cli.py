"""`cli.py bench` and `cli.py leaderboard`: run records, saved scores, --skip-existing, schemas, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.results import COST_KEYS, METRIC_KEYS, RUN_KEYS, SCHEMA_VERSION, load_run
from cli import main
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint, make_dataset, obj, random_scenes
from tests.test_project_oracles import check_block

FAST = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--templates", "short", "--cover-k", "2", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cli") / "data", random_scenes(10, seed=2))


def bench(capsys, data, out, *args) -> tuple[int, str, str]:
    code = main(["bench", "--data", str(data), "--out", str(out), *FAST, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def runs(folder) -> dict[str, dict]:
    return {p.name: load_run(p) for p in sorted(folder.glob("*.json"))}


def test_bench_writes_one_record_per_method(capsys, data, tmp_path):
    code, table, _ = bench(capsys, data, tmp_path, "--model", "clip,cc-max", "--model", "s2", "--save-scores")
    assert code == 0
    records = runs(tmp_path)
    assert sorted(r["method"] for r in records.values()) == ["cc-max", "clip", "s2"]
    for name, record in records.items():
        assert set(RUN_KEYS) <= set(record)
        assert record["dataset"] == "CLEVR-DS" and record["n_images"] == 10 and len(record["split_hash"]) == 64
        assert list(record["metrics"]["buckets"]) == ["0.01-0.0215", "0.0215-0.0464", "0.0464-0.1"]
        for block in [record["metrics"]["overall"], *record["metrics"]["buckets"].values()]:
            assert set(METRIC_KEYS) | {"hit@1", "hit@5", "hit@10", "precision@10", "r_precision"} <= set(block)
            assert len(block["per_class"]) == 24
        assert set(COST_KEYS) <= set(record["cost"])
        assert {"torch", "open_clip_torch", "numpy"} <= set(record["software"])
        # Every stored figure follows from the saved scores and labels (scikit-learn AP, counted hits).
        with np.load(tmp_path / record["scores_file"]) as z:
            classes = z["classes"].tolist()
            check_block(record["metrics"]["overall"], z["scores"], z["labels_overall"], classes, int(z["k"]))
            for bucket, labels in zip(z["bucket_names"].tolist(), z["labels_buckets"]):
                check_block(record["metrics"]["buckets"][bucket], z["scores"], labels, classes, int(z["k"]))
        assert name.startswith(record["method"] + "__") and record["run_id"] in name
    for method in ("clip", "cc-max", "s2"):
        assert f"| {method} |" in table


def test_bucket_counts_follow_the_protocol(capsys, tmp_path):
    # Two red cubes in different buckets; one sub-threshold blue sphere (left out); one plain negative.
    scenes = [[obj("red cube", 0.015)], [obj("red cube", 0.08)], [obj("blue sphere", 0.05, visible_pixels=3)], []]
    data = make_dataset(tmp_path / "data", scenes)
    code, _, _ = bench(capsys, data, tmp_path / "out", "--model", "clip", "--min-visible-pixels", "10",
                       "--buckets", "0.01,0.03,0.1")  # fmt: skip
    assert code == 0
    (record,) = runs(tmp_path / "out").values()
    red, blue = (record["metrics"]["overall"]["per_class"][c] for c in ("red cube", "blue sphere"))
    assert (red["n_positives"], red["n_negatives"]) == (2, 2)
    assert (blue["n_positives"], blue["n_negatives"], blue["AP"]) == (0, 3, None)
    small, large = record["metrics"]["buckets"]["0.01-0.03"], record["metrics"]["buckets"]["0.03-0.1"]
    assert small["per_class"]["red cube"]["n_positives"] == 1 and small["per_class"]["red cube"]["n_negatives"] == 2
    assert (small["n_queries"], large["n_queries"]) == (1, 1)
    assert small["n_queries_without_positives"] == 23


def test_skip_existing(capsys, data, tmp_path):
    assert bench(capsys, data, tmp_path, "--model", "clip")[0] == 0
    (path,) = tmp_path.glob("*.json")
    before = path.read_text()
    path.write_text(before.replace(f'"schema_version": {SCHEMA_VERSION}', f'"schema_version": {SCHEMA_VERSION}, "marker": true'))
    code, _, err = bench(capsys, data, tmp_path, "--model", "clip", "--skip-existing")
    assert code == 0 and "skip clip" in err and '"marker": true' in path.read_text()
    assert bench(capsys, data, tmp_path, "--model", "clip")[0] == 0  # without the flag: run again
    assert '"marker": true' not in path.read_text()
    # A different protocol is a different run, never skipped in place of the old one.
    assert bench(capsys, data, tmp_path, "--model", "clip", "--skip-existing", "--precision-k", "5")[0] == 0
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_runs_are_reproducible(capsys, data, tmp_path):
    for out in ("a", "b"):
        assert bench(capsys, data, tmp_path / out, "--model", "cc-mean", "--cache-dir", "none")[0] == 0
    (a,), (b,) = runs(tmp_path / "a").values(), runs(tmp_path / "b").values()
    assert a["run_id"] == b["run_id"] and a["metrics"] == b["metrics"]


def test_a_cover_read_with_its_magnified_windows_is_extracted_once(capsys, data, tmp_path):
    """cc-max and cc-fine-cal in one call: only cc-fine is encoded (the cache holds no cc entries), cc-max
    reads its leading windows and scores as a call of cc-max alone does; with cc-fine-cal skipped, cc-max
    encodes its own cover."""
    cache = tmp_path / "cache"
    both = bench(capsys, data, tmp_path / "both", "--model", "cc-max,cc-fine-cal", "--save-scores", "--cache-dir", str(cache))
    assert both[0] == 0
    assert [folder.name.split("-")[-2] for folder in cache.iterdir()] == ["cc_fine"]
    assert bench(capsys, data, tmp_path / "alone", "--model", "cc-max", "--save-scores", "--cache-dir", "none")[0] == 0
    (alone,) = runs(tmp_path / "alone").values()
    name, joint = next((name, record) for name, record in runs(tmp_path / "both").items() if record["method"] == "cc-max")
    assert joint["cost"]["forward_passes_per_image"] == alone["cost"]["forward_passes_per_image"] == 5  # cc@2
    with np.load(tmp_path / "both" / joint["scores_file"]) as a, np.load(tmp_path / "alone" / alone["scores_file"]) as b:
        np.testing.assert_allclose(a["scores"], b["scores"], atol=2e-3, rtol=0)
    (tmp_path / "both" / name).unlink()  # cc-max runs again, cc-fine-cal is skipped
    assert bench(capsys, data, tmp_path / "both", "--model", "cc-max,cc-fine-cal", "--skip-existing", "--cache-dir", str(cache))[0] == 0
    assert sorted(folder.name.split("-")[-2] for folder in cache.iterdir()) == ["cc", "cc_fine"]


def test_with_the_shipped_weights_every_method_cuts_the_shipped_fusion_s_cover(capsys, tmp_path):
    """No weights named: cc-max alone is the run it is beside detailclip, on the shipped fusion's (auto) cover."""
    data = make_dataset(tmp_path / "data", random_scenes(4, seed=3), side=256)
    for out, models in (("alone", "cc-max"), ("beside", "cc-max,detailclip")):
        code = main(["bench", "--data", str(data), "--out", str(tmp_path / out), "--model", models, "--templates", "short",
                     "--cache-dir", "none", "--quiet"])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    alone, beside = ({r["method"]: r for r in runs(tmp_path / out).values()}["cc-max"] for out in ("alone", "beside"))
    assert alone["method_settings"]["k"] == "auto" and alone["cover_k"]["per_image"] == [3] * 4  # 256 px, 112 px input
    assert alone["run_id"] == beside["run_id"] and alone["metrics"] == beside["metrics"]


def test_detailclip_adopts_the_checkpoint_backbone(capsys, data, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "fusion.pt", k=2)
    code = main(["bench", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "detailclip,cc-max",
                 "--checkpoint", str(checkpoint), "--templates", "short", "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = {r["method"]: r for r in runs(tmp_path / "out").values()}
    assert records["detailclip"]["backbone"] == TINY_BACKBONE
    assert records["detailclip"]["method_settings"]["checkpoint_sha256"]
    assert records["cc-max"]["method_settings"]["k"] == 2  # cover k follows the checkpoint
    assert (tmp_path / "out" / "feature_cache").is_dir()  # beside the results, never beside a checkpoint


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "detailclip"], "needs --checkpoint"),
        (["--model", "detailclip", "--checkpoint", "missing.pt"], "no checkpoint file"),
        (["--model", "clip", "--buckets", "0.1,0.01"], "increasing"),
        (["--model", "clip", "--split", "val"], "no split 'val'"),
        (["--model", "clip", "--templates", "nope"], "unknown template set"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(capsys, data, tmp_path, args, message):
    code, _, err = bench(capsys, data, tmp_path, *args)
    assert code != 0 and message in err and err.count("\n") == 1


def test_missing_data_and_foreign_checkpoint(capsys, data, tmp_path):
    code, _, err = bench(capsys, tmp_path / "nowhere", tmp_path, "--model", "clip")
    assert code != 0 and "no split 'test'" in err and err.count("\n") == 1
    checkpoint = make_checkpoint(tmp_path / "fusion.pt")
    code = main(["bench", "--data", str(data), "--out", str(tmp_path), "--model", "detailclip", "--checkpoint",
                 str(checkpoint), "--backbone", "ViT-B-32", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "was trained with backbone" in err and err.count("\n") == 1


def test_benchmark_leaderboard(capsys, data, tmp_path):
    results = tmp_path / "results"
    assert bench(capsys, data, results, "--model", "clip,grid-max,cc-mean")[0] == 0
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "board.csv")]) == 0
    table = pd.read_csv(tmp_path / "board.csv", comment="#")
    assert len(table) == 3 and set(table["method"]) == {"clip", "grid-max", "cc-mean"}
    expected = {"method", "backbone", "pretrained", "dataset", "split", "split_hash", "n_images", "mAP", "hit@1",
                "hit@5", "hit@10", "precision@10", "r_precision", "n_queries", "n_positives", "run_id", "file",
                *COST_KEYS, "mAP 0.01-0.0215", "mAP 0.0215-0.0464", "mAP 0.0464-0.1"}  # fmt: skip
    assert expected <= set(table.columns)
    assert list(table["mAP"]) == sorted(table["mAP"], reverse=True)
    record = load_run(results / table.loc[0, "file"])
    assert table.loc[0, "mAP"] == pytest.approx(record["metrics"]["overall"]["mAP"])
    assert table.loc[0, "mAP 0.0464-0.1"] == pytest.approx(record["metrics"]["buckets"]["0.0464-0.1"]["mAP"])
    markdown = (tmp_path / "board.md").read_text()
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + 3 and "| 0.01-0.0215 |" in table_lines[0]
    assert (tmp_path / "board.png").read_bytes()[:4] == b"\x89PNG"


def test_leaderboard_refuses_bad_folders(capsys, tmp_path):
    assert main(["leaderboard", str(tmp_path / "nowhere")]) != 0
    assert main(["leaderboard", str(tmp_path)]) != 0
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    assert main(["leaderboard", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "no results folder" in err and "no run records" in err and "not a benchmark run" in err


def test_saved_scores_hold_the_labels(capsys, data, tmp_path):
    assert bench(capsys, data, tmp_path, "--model", "clip", "--save-scores")[0] == 0
    (path,) = tmp_path.glob("*.scores.npz")
    with np.load(path) as z:
        assert z["scores"].shape == z["labels_overall"].shape == (24, 10)
        assert z["labels_buckets"].shape == (3, 24, 10) and z["images"].shape == (10,)
