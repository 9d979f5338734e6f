"""`--cover-k auto` (issue #30 item 2) in bench, index, encode and train: k per image from its size, recorded
with its rule in run records, index headers, encoded vectors and checkpoints; fixed-k runs keep their identity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmark.results import load_run
from benchmark.search import load_index
from cli import main
from detailclip.checkpoint import load_checkpoint
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint, make_dataset, random_scenes

RULE = "k = ceil(longest image side / backbone input size)"
RANDOM = ["--backbone", TINY_BACKBONE, "--pretrained", "none"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("auto") / "data", random_scenes(4, seed=3))  # 64 px: k = 2 at 32 px


def _runs(folder) -> dict[str, dict]:
    return {record["method"]: record for record in map(load_run, sorted(folder.glob("*.json")))}


def test_bench_records_the_rule_and_each_images_k(capsys, data, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "fusion.pt", k=3)
    common = ["bench", "--data", str(data), "--checkpoint", str(checkpoint), "--templates", "short", "--quiet",
              "--model", "clip,cc-max,detailclip"]
    assert main([*common, "--out", str(tmp_path / "auto"), "--cover-k", "auto"]) == 0
    assert main([*common, "--out", str(tmp_path / "fixed"), "--cover-k", "2"]) == 0
    assert main([*common, "--out", str(tmp_path / "default")]) == 0
    auto, fixed, default = (_runs(tmp_path / name) for name in ("auto", "fixed", "default"))
    expected = {"rule": RULE, "input_size": 32, "per_image": [2, 2, 2, 2]}
    for method in ("cc-max", "detailclip"):
        assert auto[method]["method_settings"]["k"] == "auto" and auto[method]["cover_k"] == expected
        assert fixed[method]["method_settings"]["k"] == 2 and "cover_k" not in fixed[method]
        # at 64 px the auto cover is the k = 2 cover: the same figures under another identity
        assert auto[method]["metrics"]["overall"]["mAP"] == fixed[method]["metrics"]["overall"]["mAP"]
        assert auto[method]["run_id"] != fixed[method]["run_id"]
    assert "cover_k" not in auto["clip"] and auto["clip"]["run_id"] == fixed["clip"]["run_id"]
    assert default["detailclip"]["method_settings"]["k"] == 3  # without --cover-k: the checkpoint's k
    capsys.readouterr()


def test_index_records_each_images_k_beside_it(capsys, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (height, width) in {"a.png": (64, 64), "b.png": (40, 100), "c.png": (20, 30)}.items():
        Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(folder / name)
    out = tmp_path / "index.npz"
    assert main(["index", str(folder), "--out", str(out), "--method", "cc-max", "--cover-k", "auto", *RANDOM,
                 "--quiet"]) == 0  # fmt: skip
    header = load_index(out).header
    assert [image["path"] for image in header["images"]] == ["a.png", "b.png", "c.png"]
    assert header["method_settings"]["k"] == "auto"
    assert header["cover_k"] == {"rule": RULE, "input_size": 32, "per_image": [2, 4, 1]}
    assert load_index(out).index.counts.tolist() == [5, 30, 1]  # cc@2, cc@4 and cc@1 windows
    capsys.readouterr()


def test_train_and_encode_record_auto_covers(capsys, data, tmp_path):
    checkpoint = tmp_path / "fusion.pt"
    assert main(["train", "--data", str(data), "--split", "test", "--val-split", "test", "--out", str(checkpoint),
                 *RANDOM, "--size", "tiny", "--cover-k", "auto", "--templates", "short", "--epochs", "1",
                 "--batch-size", "2", "--cache-dir", "none", "--quiet"]) == 0  # fmt: skip
    _, config = load_checkpoint(checkpoint, "cpu")
    assert config["k"] == "auto"
    counts = {"train": config["num_train_images"], "val": config["num_val_images"]}  # the split's 4, one held out
    assert counts == {"train": 3, "val": 1}
    assert config["cover_k"] == {part: {"rule": RULE, "input_size": 32, "per_image": [2] * n} for part, n in counts.items()}

    folder = tmp_path / "images"
    folder.mkdir()
    for name, side in (("a.png", 64), ("b.png", 130)):
        Image.fromarray(np.full((side, side, 3), 90, np.uint8)).save(folder / name)
    fixed = make_checkpoint(tmp_path / "fixed.pt", k=3)
    for used, given, per_image in ((fixed, "auto", [2, 5]), (checkpoint, None, [2, 5]), (fixed, None, None)):
        out = tmp_path / "vectors.npz"
        assert main(["encode", "--checkpoint", str(used), "--images", str(folder), "--out", str(out), "--quiet",
                     *(["--cover-k", given] if given else [])]) == 0  # fmt: skip
        with np.load(out) as z:
            recorded = json.loads(str(z["config"]))
            assert z["paths"].tolist() == ["a.png", "b.png"]
        assert recorded.get("cover_k", {}).get("per_image") == per_image
        assert recorded["k"] == ("auto" if per_image else 3) and recorded.get("checkpoint_k") == (3 if given else None)
    capsys.readouterr()
