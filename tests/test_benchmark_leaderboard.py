"""`leaderboard`: captions, intervals, paired comparisons (against a brute-force bootstrap), labels, files, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from benchmark.evaluation import evaluate
from benchmark.leaderboard import build_table, to_markdown
from benchmark.metrics import IGNORE
from benchmark.results import SCHEMA_VERSION, write_run
from benchmark.uncertainty import resample_counts
from cli import main

N, RESAMPLES, BUCKETS = 30, 100, ["small", "large"]
CLASSES = ["red cube", "blue sphere", "green cylinder"]


def split_labels(seed: int = 0):
    """Overall labels [3, N] and two buckets: each relevant image falls in one of them."""
    rng = np.random.default_rng(seed)
    overall = (rng.random((3, N)) < 0.35).astype(np.int8)
    small = rng.random((3, N)) < 0.5
    per_bucket = np.stack([np.where(overall == 1, np.where(big, IGNORE, 1), 0) for big in (~small, small)]).astype(np.int8)
    return overall, per_bucket


def make_run(method: str, strength: float, seed: int, split_hash: str = "ab" * 32, vectors: int = 1, checkpoint=None,
             device=None, run_id: str | None = None, k: int | str | None = None) -> dict:  # fmt: skip
    overall, per_bucket = split_labels()
    scores = strength * overall + np.random.default_rng(seed).standard_normal(overall.shape)
    metrics = evaluate(scores, CLASSES, overall, BUCKETS, per_bucket, k=10, n_resamples=RESAMPLES)
    cost = {"vectors_per_image": vectors, "forward_passes_per_image": vectors, "gflops_per_image": 0.2 * vectors,
            "encode_images_per_s": 50.0, "query_latency_ms": 0.1}  # fmt: skip
    if device:
        cost.update(encode_device=device, encode_threads=2)
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id or f"{method}{seed:06d}", "task": "class_retrieval",
        "method": method, "method_settings": {**({"checkpoint": checkpoint} if checkpoint else {}),
                                              **({"scheme": "whole" if k == 1 else "cc", "k": k} if k else {})},
        "backbone": "ViT-T", "pretrained": "clevr-ds-v3", "dataset": "CLEVR-DS", "split": "test",
        "split_hash": split_hash, "n_images": N, "protocol": {"buckets": [[0.01, 0.03], [0.03, 0.1]], "min_visible_pixels": 0},
        "seed": 0, "metrics": metrics, "cost": cost, "software": {}, "scores_file": None, "scores": scores,
    }  # fmt: skip


def records(*runs) -> list[tuple[dict, str]]:
    return [({k: v for k, v in r.items() if k != "scores"}, f"{r['run_id']}.json") for r in runs]


def brute_force_interval(a: dict, b: dict, labels) -> tuple[float, float]:
    """Percentile 95% interval of mAP(a) - mAP(b) over the same image resamples, AP from scikit-learn."""

    def resampled_map(scores, w):
        keep = (labels != IGNORE) & (w > 0)
        return np.mean([average_precision_score(y[k], s[k], sample_weight=w[k]) for s, y, k in zip(scores, labels, keep)
                        if (y[k] == 1).any()])  # fmt: skip

    counts = np.concatenate(list(resample_counts(N, RESAMPLES, seed=0)), axis=1)
    diffs = [resampled_map(a["scores"], counts[:, i]) - resampled_map(b["scores"], counts[:, i]) for i in range(RESAMPLES)]
    return tuple(np.quantile(diffs, [0.025, 0.975]))


def test_paired_comparison_matches_a_brute_force_bootstrap():
    best, weak, multi = make_run("cc-mean", 2.0, 1), make_run("clip", 1.5, 2), make_run("cc-max", 3.0, 3, vectors=166)
    table = build_table(records(best, weak, multi)).set_index("method")
    overall, per_bucket = split_labels()
    assert (table["ref vs best single-vector"] == "cc-mean").all()  # cc-max has 166 vectors per image
    assert np.isnan(table.loc["cc-mean", "delta vs best single-vector"])
    for method in ("clip", "cc-max"):
        delta = table.loc[method, "mAP"] - table.loc["cc-mean", "mAP"]
        assert table.loc[method, "delta vs best single-vector"] == pytest.approx(delta)
    row = table.loc["clip"]
    for suffix, labels in (("", overall), (" small", per_bucket[0])):
        lo, hi = brute_force_interval(weak, best, labels)
        assert row[f"delta_lo{suffix} vs best single-vector"] == pytest.approx(lo, abs=1e-4)
        assert row[f"delta_hi{suffix} vs best single-vector"] == pytest.approx(hi, abs=1e-4)
        assert row[f"significant{suffix} vs best single-vector"] == (lo > 0 or hi < 0)


def test_csv_markdown_and_plots(tmp_path):
    runs = [make_run("cc-mean", 2.0, 1), make_run("clip", 1.8, 2), make_run("oracle-crop", 4.0, 3, vectors=7)]
    results = tmp_path / "results"
    for r in runs:
        write_run(results / f"{r['run_id']}.json", records(r)[0][0])
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "board.csv"), "--baseline", "clip"]) == 0
    text = (tmp_path / "board.csv").read_text()
    caption = text.splitlines()[0]
    for part in ("CLEVR-DS", "split test", f"content {'ab' * 6}", f"{N} images", "small: ", "large: ", "ViT-T", "clevr-ds-v3",
                 "oracle-crop: an upper bound"):  # fmt: skip
        assert part in caption
    table = pd.read_csv(tmp_path / "board.csv", comment="#").set_index("method")
    for r in runs:
        row, m = table.loc[r["method"]], r["metrics"]
        assert [row["map_lo"], row["map_hi"]] == pytest.approx(m["overall"]["mAP_ci"])
        assert [row["map_lo small"], row["map_hi small"]] == pytest.approx(m["buckets"]["small"]["mAP_ci"])
        assert row["n_positives large"] == m["buckets"]["large"]["n_positives"]
    assert bool(table.loc["oracle-crop", "uses_ground_truth"]) and not table.loc["clip", "uses_ground_truth"]
    assert "delta vs clip" in table.columns and np.isnan(table.loc["clip", "delta vs clip"])
    markdown = (tmp_path / "board.md").read_text()
    assert markdown.startswith(caption[2:]) and "ViT-T" not in markdown.split("\n", 1)[1]  # backbone once
    assert "| oracle-crop (upper bound) |" in markdown and "Δ vs clip" in markdown
    assert "img/s" not in markdown  # the runs do not say where their speed was measured
    assert (tmp_path / "board.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "board.pdf").read_bytes()[:4] == b"%PDF"
    assert "<svg" in (tmp_path / "board.svg").read_text()


def test_every_leaderboard_file_has_the_same_bytes_when_written_again(tmp_path):
    """No creation date in the SVG or PDF and no random SVG ids: a leaderboard can be committed and diffed."""
    results = tmp_path / "results"
    for r in (make_run("cc-mean", 2.0, 1), make_run("clip", 1.8, 2)):
        write_run(results / f"{r['run_id']}.json", records(r)[0][0])
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert main(["leaderboard", str(results), "--out", str(tmp_path / name / "board.csv")]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["board.csv", "board.md", "board.pdf", "board.png", "board.svg"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert b"CreationDate" not in (tmp_path / "a" / "board.pdf").read_bytes()
    assert "<dc:date>" not in (tmp_path / "a" / "board.svg").read_text()


def test_runs_of_different_splits_are_never_compared():
    a, b = make_run("clip", 1.0, 1), make_run("cc-mean", 2.0, 2, split_hash="cd" * 32)
    table = build_table(records(a, b))
    assert table["group"].nunique() == 2
    assert not any(c.startswith("delta") for c in table.columns)
    markdown = to_markdown(table)
    assert markdown.count("| run |") == 2 and "abababababab" in markdown and "cdcdcdcdcdcd" in markdown


def test_labels_tell_runs_apart_without_machine_paths():
    runs = [make_run("detailclip", 2.0, 1, checkpoint="/home/someone/ckpt/fusion-a.pt"),
            make_run("detailclip", 2.0, 2, checkpoint="/home/someone/ckpt/fusion-b.pt"),
            make_run("clip", 1.0, 3, run_id="aaaaaa111111"), make_run("clip", 1.0, 4, run_id="bbbbbb222222")]  # fmt: skip
    table = build_table(records(*runs))
    expected = {"detailclip (fusion-a.pt)", "detailclip (fusion-b.pt)", "clip (run aaaaaa)", "clip (run bbbbbb)"}
    assert set(table["label"]) == expected
    assert "/home/someone" not in table.to_csv() + to_markdown(table)


def test_labels_name_the_cover_where_runs_differ_in_it():
    """A folder holding runs at k = 10 and at the auto cover (e.g. after the shipped fusion moved to auto)
    tells them apart by k; methods without a cover keep their plain name."""
    runs = [make_run("cc-max", 2.0, 1, k=10), make_run("cc-max", 2.0, 2, k="auto"),
            make_run("detailclip", 2.0, 3, checkpoint="/x/fusion.pt", k="auto"), make_run("clip", 1.0, 4, k=1)]
    labels = set(build_table(records(*runs))["label"])
    assert labels == {"cc-max k=10", "cc-max k=auto", "detailclip (fusion.pt) k=auto", "clip"}
    same = set(build_table(records(make_run("cc-max", 2.0, 1, k=10), make_run("clip", 1.0, 4)))["label"])
    assert same == {"cc-max", "clip"}


def test_speed_column_names_its_device():
    table = build_table(records(make_run("clip", 1.0, 1, device="cpu"), make_run("cc-mean", 2.0, 2, device="cpu")))
    assert "| img/s (cpu, 2 threads) |" in to_markdown(table)


def test_foreign_and_broken_json_are_skipped_with_one_line(capsys, tmp_path):
    run = make_run("clip", 1.0, 1)
    write_run(tmp_path / "clip.json", records(run)[0][0])
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["leaderboard", str(tmp_path)]) == 0
    warnings = capsys.readouterr().err.splitlines()[:-1]  # the last line lists the files written
    assert len(warnings) == 2 and "broken.json" in warnings[0] and "other.json" in warnings[1]


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5"])
def test_runs_with_figures_outside_0_1_are_refused(capsys, tmp_path, value):
    record = records(make_run("clip", 1.0, 1))[0][0]
    record["metrics"]["buckets"]["small"]["mAP"] = value
    (tmp_path / "clip.json").write_text(json.dumps(record))
    assert main(["leaderboard", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "not a number in [0, 1]" in err and err.count("\n") == 1


def test_unknown_baseline_is_one_line(capsys, tmp_path):
    write_run(tmp_path / "clip.json", records(make_run("clip", 1.0, 1))[0][0])
    assert main(["leaderboard", str(tmp_path), "--baseline", "nope"]) != 0
    err = capsys.readouterr().err
    assert "no run of baseline 'nope'" in err and err.count("\n") == 1
