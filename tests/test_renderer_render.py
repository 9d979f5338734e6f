"""Real Blender renders at 128 px: annotations, exports, validation, resume and CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO

from clevr_ds.annotate import decode_mask
from clevr_ds.dataset import coco_path, image_file, load_meta, load_scenes, manifest_path, scene_path
from clevr_ds.validate import validate
from conftest import ROOT, TINY_RENDER_ARGS, run_cli

pytestmark = pytest.mark.slow


def test_masks_boxes_and_scales_agree_with_each_other_and_the_targets(tiny_dataset):
    scenes = load_scenes(tiny_dataset, "val")
    assert [s["image_index"] for s in scenes] == [0, 1, 2, 3]
    for scene in scenes:
        assert scene["render"]["engine"] == "cycles" and scene["render"]["bpy_version"] == "5.0.1"
        for obj in scene["objects"]:
            mask = decode_mask(obj["mask"])
            assert mask.shape == (128, 128)
            assert mask.sum() == obj["visible_pixels"] > 0
            (y0, x0), (y1, x1) = np.argwhere(mask).min(0), np.argwhere(mask).max(0)  # independent of mask_bbox
            assert obj["bbox"] == [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]
            assert obj["rel_scale"] == max(x1 - x0 + 1, y1 - y0 + 1) / 128
            # Unoccluded by construction: the visible box is the predicted box, to within a pixel.
            px = np.array(obj["projected_bbox"])
            x, y, w, h = obj["bbox"]
            assert np.all(np.abs(np.array([x, y, x + w, y + h]) - px) <= 1.0)
            assert obj["rel_scale"] == pytest.approx(obj["target_scale"], abs=1.5 / 128)


def test_exports_load_with_pycocotools_and_pandas(tiny_dataset):
    coco = COCO(str(coco_path(tiny_dataset, "val")))
    assert len(coco.getCatIds()) == 24 and len(coco.getImgIds()) == 4
    scenes = load_scenes(tiny_dataset, "val")
    assert len(coco.getAnnIds()) == sum(o["visible"] for s in scenes for o in s["objects"])
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(ann).sum() == ann["area"] > 0
    table = pd.read_csv(manifest_path(tiny_dataset, "val"))
    assert table["image_filename"].tolist() == [s["image_filename"] for s in scenes]
    assert (table["num_objects"] >= 2).all()


def test_rendered_dataset_validates(tiny_dataset):
    assert validate(tiny_dataset) == []
    assert run_cli("validate", str(tiny_dataset)).stdout.splitlines()[0].endswith("OK")


def _corrupt(root):
    scene_file = scene_path(root, "val", 1)
    scene = json.loads(scene_file.read_text())
    scene["objects"][0]["bbox"][2] += 3
    scene["objects"][-1]["class"] = "gold cube"
    scene_file.write_text(json.dumps(scene))
    image_file(root, "val", 2).write_bytes(b"not a png")
    scene_path(root, "val", 3).unlink()
    coco = json.loads(coco_path(root, "val").read_text())
    coco["annotations"][0]["bbox"] = [0, 0, 1, 1]
    coco_path(root, "val").write_text(json.dumps(coco))


def test_validate_catches_planted_corruption(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    _corrupt(root)
    problems = "\n".join(validate(root))
    assert "bbox [" in problems and "disagrees with its mask" in problems
    assert "gold cube" in problems
    assert "CLEVR-DS_val_000002.png: image does not decode" in problems
    assert "CLEVR-DS_val_000003.png: image without a scene" in problems
    assert "annotations of CLEVR-DS_val_000000.png differ" in problems
    proc = run_cli("validate", str(root), check=False)
    assert proc.returncode != 0 and "problem(s)" in proc.stderr.splitlines()[-1]


def test_a_scene_re_renders_alone_and_identically(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    before = json.loads(scene_path(root, "val", 2).read_text())
    pixels = np.asarray(Image.open(image_file(root, "val", 2)))
    scene_path(root, "val", 2).unlink()
    image_file(root, "val", 2).unlink()
    untouched = scene_path(root, "val", 1).stat().st_mtime_ns
    run_cli("render", "--out", str(root), "--split", "val", "-n", "4", *TINY_RENDER_ARGS)
    after = json.loads(scene_path(root, "val", 2).read_text())
    before.pop("render"), after.pop("render")  # wall times differ
    assert after == before
    assert np.array_equal(np.asarray(Image.open(image_file(root, "val", 2))), pixels)
    assert scene_path(root, "val", 1).stat().st_mtime_ns == untouched


def test_killed_render_resumes_to_a_complete_valid_dataset(tmp_path):
    out = tmp_path / "ds"
    args = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), "--split", "train", "-n", "6", *TINY_RENDER_ARGS]
    proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((out / "scenes" / "train").glob("*.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Blender worker, mid-run
    proc.wait()
    done_before = len(list((out / "scenes" / "train").glob("*.json")))
    assert 1 <= done_before < 6
    run_cli(*args[2:])
    assert [s["image_index"] for s in load_scenes(out, "train")] == list(range(6))
    assert validate(out) == []
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def drop_scenes(root, indices) -> None:
    """Delete the scenes of `indices` of split 'val', as a run killed before them leaves the split."""
    for i in indices:
        scene_path(root, "val", i).unlink()
        image_file(root, "val", i).unlink()


def dataset_files(root) -> dict:
    """Every file of the dataset but the writers' lock, with its bytes and modification time."""
    return {p.relative_to(root): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and p.name != ".lock"}


def test_a_smaller_n_ends_a_killed_split_where_nothing_lies_beyond_it(tiny_copy):
    """A run killed before its last scenes, followed by a smaller -n: the split becomes that many images,
    complete and valid, with its exports rewritten (it used to keep the killed run's larger count and stay
    incomplete)."""
    drop_scenes(tiny_copy, [2, 3])
    run_cli("render", "--out", str(tiny_copy), "--split", "val", "-n", "2", *TINY_RENDER_ARGS)
    assert load_meta(tiny_copy, "val")["num_images"] == 2
    assert [s["image_index"] for s in load_scenes(tiny_copy, "val")] == [0, 1]
    assert validate(tiny_copy) == []
    assert len(json.loads(coco_path(tiny_copy, "val").read_text())["images"]) == 2


def test_a_smaller_n_keeps_a_complete_split_and_refuses_to_leave_one_unfinished(tiny_copy):
    """A complete split stays whole under a smaller -n; an unfinished one with scenes beyond -n is refused
    in one line, nothing written, rather than left incomplete after an exit 0."""
    run_cli("render", "--out", str(tiny_copy), "--split", "val", "-n", "1", *TINY_RENDER_ARGS)
    assert load_meta(tiny_copy, "val")["num_images"] == 4 and validate(tiny_copy) == []
    drop_scenes(tiny_copy, [1])
    before = dataset_files(tiny_copy)
    proc = run_cli("render", "--out", str(tiny_copy), "--split", "val", "-n", "1", *TINY_RENDER_ARGS, check=False)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "finish it with -n 4" in proc.stderr
    assert dataset_files(tiny_copy) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scales", "0.2-0.1"], "needs A < B"),
        (["--scales", "0.01-0.1,x"], "malformed scale range"),
        (["--objects", "5-2"], "--objects"),
        (["--scales", "0.4-0.5", "--objects", "10"], "cannot place"),
        (["--preset", "ultra"], "ultra"),
    ],
)
def test_bad_render_requests_fail_with_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "ds"
    proc = run_cli("render", "--out", str(out), "--resolution", "128", *args, check=False)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert not out.exists()


def test_settings_mismatch_is_refused_and_resume_reuses_recorded_settings(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    proc = run_cli("render", "--out", str(root), "--split", "val", "-n", "4", "--resolution", "96", "--quiet", check=False)
    assert proc.returncode != 0 and "other settings" in proc.stderr
    run_cli("render", "--out", str(root), "--split", "val", "--resume", "--quiet")
    assert len(load_scenes(root, "val")) == 4
