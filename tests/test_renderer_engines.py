"""Render paths no other test touches, each on a tiny real Blender render: EEVEE and Workbench
(headless, software OpenGL), `--workers 2`, and resuming after an image was deleted.

A failure to render is a test failure with Blender's own message (never a skip).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from clevr_ds.dataset import image_file, load_scenes, scene_path
from conftest import run_cli

pytestmark = pytest.mark.slow

TINY = ["--resolution", "64", "--scales", "0.2-0.3", "--objects", "1-2", "--quiet"]


def _render(out, *args) -> None:
    proc = run_cli("render", "--out", str(out), *args, check=False)
    assert proc.returncode == 0, f"render {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"


def _validates(out) -> None:
    proc = run_cli("validate", str(out), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].endswith("OK")


def _not_blank(path) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (64, 64, 3)
    assert pixels.std() > 3.0, f"{path.name} is (nearly) uniform: std {pixels.std():.2f}"
    return pixels


@pytest.mark.parametrize("engine, preset", [("eevee", "eevee"), ("workbench", "preview")])
def test_other_engines_render_headless_and_validate(tmp_path, engine, preset):
    out = tmp_path / engine
    _render(out, "--split", "val", "-n", "1", "--preset", preset, "--samples", "2", *TINY)
    _validates(out)
    (scene,) = load_scenes(out, "val")
    assert scene["render"]["engine"] == engine and scene["render"]["samples"] == 2
    pixels = _not_blank(image_file(out, "val", 0))
    # the objects are seen: every visible object has pixels in the id pass, and the image differs
    # between the union of the masks and the rest
    from clevr_ds.annotate import decode_mask

    masks = [decode_mask(o["mask"]) for o in scene["objects"] if o["visible"]]
    assert masks and all(m.sum() > 0 for m in masks)
    union = np.logical_or.reduce(masks)
    assert np.abs(pixels[union].mean(0) - pixels[~union].mean(0)).max() > 2.0


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Nine images with --workers 2: two chunks (scenes are sent in chunks of 8), so both workers run."""
    out = tmp_path_factory.mktemp("workers") / "ds"
    args = ("--split", "train", "-n", "9", "--preset", "fast", "--workers", "2", *TINY)
    _render(out, *args)
    return out, args


def test_two_workers_render_a_complete_valid_split(two_workers):
    out, _ = two_workers
    _validates(out)
    scenes = load_scenes(out, "train")
    assert [s["image_index"] for s in scenes] == list(range(9))
    assert len({s["seed"] for s in scenes}) == 9
    for i in range(9):
        _not_blank(image_file(out, "train", i))
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


@pytest.mark.parametrize("index", [2, 8])  # one scene of each worker's chunk
def test_a_deleted_image_is_re_rendered_identically(two_workers, tmp_path, index):
    src, args = two_workers
    out = tmp_path / "ds"
    shutil.copytree(src, out)
    png = image_file(out, "train", index)
    original_bytes = png.read_bytes()
    original = np.asarray(Image.open(png))
    scene_before = json.loads(scene_path(out, "train", index).read_text())
    untouched = {i: image_file(out, "train", i).stat().st_mtime_ns for i in range(9) if i != index}
    png.unlink()  # the scene JSON stays
    _render(out, *args)
    assert png.exists(), "the image was not re-rendered: its scene JSON alone counted as finished"
    assert np.array_equal(np.asarray(Image.open(png)), original)
    assert png.read_bytes() == original_bytes
    scene_after = json.loads(scene_path(out, "train", index).read_text())
    scene_before.pop("render"), scene_after.pop("render")  # wall times differ
    assert scene_after == scene_before
    assert {i: image_file(out, "train", i).stat().st_mtime_ns for i in untouched} == untouched
    _validates(out)
