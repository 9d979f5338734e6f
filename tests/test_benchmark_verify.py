"""`leaderboard --verify` and `report --verify` (issue #29 item 4): each run verified, mismatched or unverifiable,
and the provenance a run records (version, git commit) outside its identity.

Oracles: runs made by the real `bench` on a tiny CLEVR-DS split with a tiny random backbone, then edited the
way a hand would (a scores file, a figure, a checkpoint or weights file replaced); hashlib for content hashes,
git itself and pyproject.toml for the provenance.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.provenance import git_state, standard_claim
from benchmark.results import load_run
from benchmark.sources import SourceSpec
from benchmark.verify import verify_run
from clevr_ds.dataset import image_path, load_scenes, meta_path
from clevr_ds.schema import shortened
from clevr_ds.wds import write_wds
from cli import main
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint, make_dataset, random_scenes

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--templates", "short", "--quiet"]
TINY = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--cover-k", "2", *FAST]


def bench(data: Path, out: Path, *args: str) -> None:
    assert main(["bench", "--data", str(data), "--out", str(out), *args]) == 0


def runs(folder: Path) -> dict[str, tuple[dict, Path]]:
    """Method -> (record, path) of every run in `folder`."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        record = load_run(path)
        found[record["method"]] = (record, path)
    return found


def leaderboard(capsys, results: Path, out: Path, *args: str) -> tuple[pd.DataFrame, str, str]:
    """The CSV as a table (indexed by method), the markdown and stderr of `leaderboard RESULTS --out OUT ARGS`."""
    assert main(["leaderboard", str(results), "--out", str(out), *args]) == 0
    err = capsys.readouterr().err
    return pd.read_csv(out, comment="#").set_index("method"), out.with_suffix(".md").read_text(), err


def verdict(results: Path, method: str) -> str:
    record, path = runs(results)[method]
    return verify_run(record, path)


def edit_record(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("verify") / "data", random_scenes(10, seed=2))


@pytest.fixture(scope="module")
def made(data, tmp_path_factory) -> Path:
    """A results folder of clip, cc-max and detailclip (with its checkpoint), scores saved; copy it to edit it."""
    folder = tmp_path_factory.mktemp("made")
    checkpoint = make_checkpoint(folder / "fusion.pt", k=2)
    bench(data, folder / "results", "--model", "clip,cc-max,detailclip", "--checkpoint", str(checkpoint), *FAST)
    return folder / "results"


@pytest.fixture
def results(made, tmp_path) -> Path:
    """A copy of the made results (its checkpoint stays where the runs name it)."""
    return Path(shutil.copytree(made, tmp_path / "results", ignore=shutil.ignore_patterns("feature_cache", ".lock")))


def test_untouched_runs_are_verified_and_every_output_carries_the_column(capsys, results, tmp_path):
    table, markdown, err = leaderboard(capsys, results, tmp_path / "board.csv", "--verify")
    assert table["verified"].to_dict() == {"clip": "verified", "cc-max": "verified", "detailclip": "verified"}
    header = next(line for line in markdown.splitlines() if line.startswith("| run |"))
    assert header.endswith("| verified |") and markdown.count("| verified |") == 1 + 3  # the header and each row
    assert "3 of 3 run(s) verified, 0 mismatched, 0 unverifiable" in err
    table, markdown, _ = leaderboard(capsys, results, tmp_path / "plain.csv")
    assert "verified" not in table.columns and "verified" not in markdown


def test_edited_scores_are_mismatched(capsys, results, tmp_path):
    record, _ = runs(results)["clip"]
    scores = results / record["scores_file"]
    with np.load(scores) as z:
        arrays = dict(z)
    arrays["scores"] = -arrays["scores"]  # every ranking reversed
    np.savez_compressed(scores, **arrays)
    table, _, err = leaderboard(capsys, results, tmp_path / "board.csv", "--verify")
    line = table.loc["clip", "verified"]
    mAP = record["metrics"]["overall"]["mAP"]
    assert line.startswith(f"mismatched: metrics.overall.mAP: recorded {shortened(mAP)}, its saved scores give ")
    assert "\n" not in line and table.loc["cc-max", "verified"] == "verified"
    assert "2 of 3 run(s) verified, 1 mismatched, 0 unverifiable" in err


def other(value: float) -> float:
    return 0.5 if value != 0.5 else 0.25


@pytest.mark.parametrize("field", ["bucket mAP", "class AP", "replicate", "n_images"])
def test_edited_figures_are_mismatched(results, field):
    record, path = runs(results)["cc-max"]
    bucket, block = next((n, b) for n, b in record["metrics"]["buckets"].items() if b["mAP"] is not None)
    cls = next(c for c, row in block["per_class"].items() if row["AP"] is not None)
    where, old = {
        "bucket mAP": (f"metrics.buckets.{bucket}.mAP", block["mAP"]),
        "class AP": (f"metrics.buckets.{bucket}.per_class.{cls}.AP", block["per_class"][cls]["AP"]),
        "replicate": ("metrics.overall.mAP_replicates[7]", record["metrics"]["overall"]["mAP_replicates"][7]),
        "n_images": ("n_images", record["n_images"]),
    }[field]
    new = 11 if field == "n_images" else other(old)

    def change(r):
        {"bucket mAP": lambda: r["metrics"]["buckets"][bucket].update(mAP=new),
         "class AP": lambda: r["metrics"]["buckets"][bucket]["per_class"][cls].update(AP=new),
         "replicate": lambda: r["metrics"]["overall"]["mAP_replicates"].__setitem__(7, new),
         "n_images": lambda: r.update(n_images=new)}[field]()  # fmt: skip

    edit_record(path, change)
    given = f"its saved scores rank {old} images" if field == "n_images" else f"its saved scores give {shortened(old)}"
    assert verdict(results, "cc-max") == f"mismatched: {where}: recorded {shortened(new)}, {given}"


def test_a_checkpoint_that_differs_from_the_one_named_is_mismatched(data, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "fusion.pt", k=2)
    bench(data, tmp_path / "results", "--model", "detailclip", "--checkpoint", str(checkpoint), *FAST)
    named = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert runs(tmp_path / "results")["detailclip"][0]["method_settings"]["checkpoint_sha256"] == named
    assert verdict(tmp_path / "results", "detailclip") == "verified"
    make_checkpoint(checkpoint, k=2, seed=1)  # another fusion under the same name
    now = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert now != named
    assert verdict(tmp_path / "results", "detailclip") == (
        f"mismatched: checkpoint fusion.pt has content {now[:12]}, the run names {named[:12]}")
    checkpoint.unlink()
    assert verdict(tmp_path / "results", "detailclip") == "unverifiable: checkpoint fusion.pt is not here"


def test_weights_that_differ_from_the_ones_named_are_mismatched(data, tmp_path):
    import torch

    from detailclip.backbones import load_backbone

    def save_weights(seed: int) -> str:
        torch.save(load_backbone(TINY_BACKBONE, "none", device="cpu", seed=seed).model.state_dict(), weights)
        return f"weights-{hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}"

    weights = tmp_path / "weights.pt"
    named = save_weights(0)
    bench(data, tmp_path / "results", "--model", "clip", "--backbone", TINY_BACKBONE, "--pretrained", str(weights), *FAST)
    assert runs(tmp_path / "results")["clip"][0]["pretrained_id"] == named
    assert verdict(tmp_path / "results", "clip") == "verified"
    now = save_weights(1)
    assert verdict(tmp_path / "results", "clip") == f"mismatched: weights weights.pt are {now}, the run names {named}"
    weights.unlink()
    assert verdict(tmp_path / "results", "clip") == "unverifiable: weights file weights.pt is not here"


def quick_lookalike(root: Path, **meta_changes) -> Path:
    """A split whose meta records the settings of CLEVR-DS quick (20 images, scales, seed, size, objects), but
    whose images are others."""
    data = make_dataset(root, random_scenes(20, seed=3))
    meta = json.loads(meta_path(data, "test").read_text())
    meta.update({"seed": 0, "width": 2240, "height": 2240, "objects": [3, 10], "family": "clevr", **meta_changes})
    meta_path(data, "test").write_text(json.dumps(meta))
    return data


def test_a_split_claims_the_standard_whose_settings_its_meta_records(tmp_path):
    def claim(data: Path, **spec) -> dict | None:
        return standard_claim(SourceSpec(data, **spec).open())

    quick = quick_lookalike(tmp_path / "a")
    assert claim(quick) == {"name": "quick", "split": "test"}
    write_wds(quick, "test", load_scenes(quick, "test"), shard_size=8)  # its shards claim what its folder claims
    assert claim(None, wds=str(quick / "wds" / "test")) == {"name": "quick", "split": "test"}
    assert claim(quick_lookalike(tmp_path / "b", seed=1)) is None
    assert claim(quick_lookalike(tmp_path / "c", objects=5)) is None  # malformed: claims nothing
    first = load_scenes(quick, "test")[0]
    instances = {"images": [{"id": 1, "file_name": first["image_filename"], "width": 64, "height": 64}],
                 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 0}],
                 "categories": [{"id": 1, "name": "cube"}]}  # fmt: skip
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    assert claim(None, coco=tmp_path / "instances.json", image_root=image_path(quick, first).parent) is None


def test_a_run_claiming_a_standard_split_with_another_hash_is_mismatched(tmp_path):
    """bench names the standard the split's meta claims; --verify finds its content is not the published one."""
    data = quick_lookalike(tmp_path / "data")
    bench(data, tmp_path / "results", "--model", "clip", *TINY)
    record, path = runs(tmp_path / "results")["clip"]
    assert record["standard"] == {"name": "quick", "split": "test"}
    assert verify_run(record, path) == (f"mismatched: split content {record['split_hash'][:12]} is none of the "
                                        "published CLEVR-DS quick test (b87c61c586ac (AVX2), fe9613e18320 (AVX-512), "
                                        "1ba171219bc5 (AVX-512, AMD family 26))")  # fmt: skip


def test_runs_of_other_splits_pass_and_older_runs_cannot_say(results):
    record, path = runs(results)["clip"]
    assert record["standard"] is None and verify_run(record, path) == "verified"
    edit_record(path, lambda r: r.pop("standard"))  # as runs recorded before they named their standard split
    assert verdict(results, "clip") == "unverifiable: the run predates runs naming their standard split (run bench again)"


def test_runs_without_their_saved_scores_are_unverifiable(capsys, data, results, tmp_path):
    bench(data, tmp_path / "unsaved", "--model", "clip", "--no-save-scores", *TINY)
    assert verdict(tmp_path / "unsaved", "clip") == "unverifiable: no saved scores (bench saves them unless --no-save-scores)"
    record, _ = runs(results)["cc-max"]
    (results / record["scores_file"]).unlink()
    table, _, err = leaderboard(capsys, results, tmp_path / "board.csv", "--verify")
    assert table.loc["cc-max", "verified"] == f"unverifiable: missing scores file {record['scores_file']}"  # no folder
    assert "2 of 3 run(s) verified, 0 mismatched, 1 unverifiable" in err


def test_report_verifies_on_request(capsys, results, tmp_path):
    record, path = runs(results)["clip"]
    edit_record(path, lambda r: r["metrics"]["overall"].update(mAP=other(r["metrics"]["overall"]["mAP"])))
    assert main(["report", str(results), "--out", str(tmp_path / "verified.html"), "--verify"]) == 0
    assert main(["report", str(results), "--out", str(tmp_path / "plain.html")]) == 0
    verified, plain = (tmp_path / "verified.html").read_text(), (tmp_path / "plain.html").read_text()
    assert "<th>verified</th>" in verified and verified.count("<td>verified</td>") == 2
    assert "<td>mismatched: metrics.overall.mAP: recorded " in verified
    assert "verified" not in plain


def test_a_run_records_its_version_and_commit_outside_its_identity(data, tmp_path, monkeypatch):
    bench(data, tmp_path / "a", "--model", "clip", *TINY)
    (record, path), = runs(tmp_path / "a").values()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert record["software"]["clevr-ds"] == version
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert (record["software"]["git"] or {}).get("commit") == (head.stdout.strip() if head.returncode == 0 else None)
    import benchmark.runner

    other = {"clevr-ds": "9.9.9", "git": {"commit": "0" * 40, "dirty": True}}
    monkeypatch.setattr(benchmark.runner, "software_versions", lambda: other)
    bench(data, tmp_path / "b", "--model", "clip", *TINY)
    (again, again_path), = runs(tmp_path / "b").values()
    assert again["software"] == other and again_path.name == path.name and again["run_id"] == record["run_id"]


def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert git_state(tmp_path) is None  # not a checkout
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    assert git_state(tmp_path) is None  # no commit yet
    (tmp_path / "a.txt").write_text("one")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "new.txt").write_text("untracked")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("two")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}
    (tmp_path / "sub").mkdir()
    assert git_state(tmp_path / "sub") is None  # inside a checkout, not its top: another project's
