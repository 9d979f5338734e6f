"""`render --assets DIR`: a user's models in every format, measured, stored in the split, rendered as modelled;
every unusable folder, manifest or model is one line before anything is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from clevr_ds.annotate import decode_mask
from clevr_ds.dataset import image_file, load_meta, load_scenes
from clevr_ds.validate import validate
from conftest import ROOT, resume_without, run_cli

pytestmark = pytest.mark.slow
FORMATS = ("obj", "ply", "glb", "blend")
RENDER = ["--family", "aerial", "--resolution", "192x144", "--scales", "0.08-0.2", "--objects", "5-7", "--preset", "fast", "-q"]

# An L-shaped red model, 3 x 1 x 0.5 before normalising (longest side along y, so the transform turns it),
# written in every format by Blender itself.
MAKE_MODELS = textwrap.dedent("""
    import sys, bpy
    out = sys.argv[1]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    red = bpy.data.materials.new("red")
    red.diffuse_color = (0.8, 0.02, 0.02, 1.0)
    red.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.8, 0.02, 0.02, 1.0)
    for name, size, loc in (("long", (1.0, 3.0, 0.5), (0.0, 0.0, 0.25)), ("foot", (1.0, 1.0, 0.5), (1.0, -1.0, 0.25))):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=loc)
        obj = bpy.context.active_object
        obj.scale = size
        obj.data.materials.append(red)
    bpy.ops.wm.obj_export(filepath=f"{out}/model.obj")
    bpy.ops.wm.ply_export(filepath=f"{out}/model.ply")
    bpy.ops.export_scene.gltf(filepath=f"{out}/model.glb")
    bpy.ops.wm.save_as_mainfile(filepath=f"{out}/model.blend")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.active_object
    import bmesh
    bm = bmesh.new(); bm.from_mesh(obj.data)
    bmesh.ops.delete(bm, geom=list(bm.faces), context="FACES_ONLY"); bm.to_mesh(obj.data); bm.free()
    bpy.ops.wm.ply_export(filepath=f"{out}/points.ply")
""")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-c", MAKE_MODELS, str(folder)], check=True, capture_output=True, cwd=ROOT)
    return folder


def manifest(folder, entries) -> None:
    (folder / "assets.json").write_text(json.dumps({"assets": entries}))


@pytest.fixture(scope="module")
def asset_split(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    for fmt in FORMATS:
        shutil.copy(models / f"model.{fmt}", folder)
    shutil.copy(models / "model.mtl", folder)
    manifest(folder, [{"file": f"model.{fmt}", "class": f"thing {fmt}", "size_m": [8.0, 12.0], "on": {"grass": 1, "soil": 1}}
                      for fmt in FORMATS])
    out = tmp_path_factory.mktemp("split") / "ds"
    run_cli("render", "--out", str(out), "--split", "val", "-n", "3", "--assets", str(folder), *RENDER)
    return out, folder


def test_every_format_enters_the_vocabulary_with_the_same_measured_shape(asset_split):
    out, _ = asset_split
    shapes = load_meta(out, "val")["vocabulary"]["shapes"]
    hulls = [np.array(shapes[f"thing {fmt}"]["hull"]) for fmt in FORMATS]
    for fmt, hull in zip(FORMATS, hulls):
        lo, hi = hull.min(0), hull.max(0)
        assert np.allclose((lo + hi) / 2, 0, atol=1e-6) and hi[0] - lo[0] == pytest.approx(1.0, abs=1e-6), fmt
        assert (hi - lo)[1:] == pytest.approx([2 / 3, 0.5 / 3], abs=1e-5), fmt  # turned: the 3 m side runs along x
        assert shapes[f"thing {fmt}"]["colors"] == ["original"]
    for hull in hulls[1:]:  # the formats agree on the model (up to float32 storage)
        assert np.allclose(np.unique(np.round(hull, 5), axis=0), np.unique(np.round(hulls[0], 5), axis=0), atol=1e-4)
    assert validate(out) == []


def test_models_render_as_modelled_at_their_target_scale(asset_split):
    out, _ = asset_split
    seen = 0
    for scene in load_scenes(out, "val"):
        image = np.asarray(Image.open(image_file(out, "val", scene["image_index"])).convert("RGB"), dtype=float)
        for obj in scene["objects"]:
            if not obj["class"].startswith("thing"):
                continue
            seen += 1
            x, y, w, h = obj["bbox"]
            assert np.all(np.abs(np.array([x, y, x + w, y + h]) - obj["projected_bbox"]) <= 1.01)
            pixels = image[decode_mask(obj["mask"])]
            if obj["class"] != "thing ply":  # PLY carries no materials
                assert np.median(pixels[:, 0]) > 2 * np.median(pixels[:, 1])  # its own red, not a vocabulary colour
    assert seen >= 3


def test_the_split_keeps_its_models_and_resumes_without_the_folder(asset_split, tmp_path):
    out, folder = asset_split
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    stored = {p.name for p in next((copy / "assets").iterdir()).iterdir()}
    assert stored == {p.name for p in folder.iterdir()}
    meta = json.loads((copy / "meta" / "val.json").read_text())
    meta["num_images"] = 4
    (copy / "meta" / "val.json").write_text(json.dumps(meta))
    resume_without(folder, copy)
    assert len(load_scenes(copy, "val")) == 4 and validate(copy) == []


@pytest.mark.parametrize("entries, files, message", [
    (None, {}, "no assets.json"),
    ([], {}, "lists no assets"),
    ([{"file": "model.fbx", "class": "x", "size_m": [1, 2]}], {"model.fbx": b"x"}, "unknown format .fbx"),
    ([{"file": "missing.obj", "class": "x", "size_m": [1, 2]}], {}, "no such file"),
    ([{"file": "../model.obj", "class": "x", "size_m": [1, 2]}], {}, "must be a relative path inside"),
    ([{"file": "model.obj", "class": "car", "size_m": [1, 2]}], {"model.obj": "model.obj"}, "class 'car' is taken"),
    ([{"file": "model.obj", "class": "x", "size_m": [2, 1]}], {"model.obj": "model.obj"}, "0 < low <= high"),
    ([{"file": "model.obj", "class": "x", "size_m": [1, 2], "on": {"lava": 1}}], {"model.obj": "model.obj"}, "covers"),
    ([{"file": "model.obj", "class": "x"}], {"model.obj": "model.obj"}, "missing keys size_m"),
    ([{"file": "points.ply", "class": "x", "size_m": [1, 2]}], {"points.ply": "points.ply"}, "holds no mesh with faces"),
    ([{"file": "broken.glb", "class": "x", "size_m": [1, 2]}], {"broken.glb": b"glTF not really"}, "broken.glb: does not import"),
])  # fmt: skip
def test_an_unusable_folder_is_one_line_and_writes_nothing(models, tmp_path, entries, files, message):
    folder = tmp_path / "assets"
    folder.mkdir()
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            shutil.copy(models / content, folder / name)
    if entries is not None:
        manifest(folder, entries)
    proc = run_cli("render", "--out", str(tmp_path / "out"), "-n", "1", "--assets", str(folder), *RENDER, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--resolution", "64"], "--assets applies to --family aerial only"),
    (["--family", "aerial", "--resume"], "--assets cannot go with --resume"),
    (["--family", "aerial", "--executor", "ray"], "--assets cannot go with --executor ray"),
])  # fmt: skip
def test_assets_belong_to_a_fresh_local_aerial_render(models, tmp_path, args, message):
    proc = run_cli("render", "--out", str(tmp_path / "out"), "-n", "1", "--assets", str(models), *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (tmp_path / "out").exists()
