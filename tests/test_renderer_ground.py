"""`render --family aerial --ground IMAGE` for real (issue #27): the rendered ground is the recorded crop of the
user's image, the split keeps its copy so a scene re-renders alone, byte for byte, without the original file, and
every unusable image or flag is one line before anything is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from clevr_ds.camera import Camera
from clevr_ds.dataset import image_file, load_meta, load_scenes, scene_path
from clevr_ds.ground_image import image_pixel
from clevr_ds.validate import validate
from conftest import resume_without, run_cli

pytestmark = pytest.mark.slow
SIDE = 256
RENDER = ["--family", "aerial", "--resolution", "96", "--scales", "0.06-0.15", "--objects", "2-3", "--preset", "fast",
          "--split", "val", "-q"]  # fmt: skip


def smooth_colours(side: int, cells: int, seed: int = 0) -> np.ndarray:
    """An (side, side, 3) uint8 image of smooth random colour blobs about side / cells pixels across: any crop of
    it is unlike any other crop or turn, and a pixel of misalignment barely changes it."""
    lattice = np.random.default_rng(seed).random((cells + 1, cells + 1, 3)).astype(np.float32)
    channels = [np.asarray(Image.fromarray(lattice[..., k]).resize((side, side), Image.Resampling.BICUBIC)) for k in range(3)]
    return np.clip(np.stack(channels, -1) * 195 + 30, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ground_split(tmp_path_factory):
    """(split root, the user's image file): 2 scenes of 96 px on a 256 px image (a crop of about 100 px: no tiling)."""
    folder = tmp_path_factory.mktemp("ground")
    source = folder / "orthophoto.png"
    Image.fromarray(smooth_colours(SIDE, 32)).save(source)
    out = folder / "ds"
    run_cli("render", "--out", str(out), "-n", "2", "--ground", str(source), *RENDER)
    return out, source


def _far_from_objects(scene: dict) -> np.ndarray:
    """Pixels outside every object's projected box grown by half its longer side (its shadow) and 2 px."""
    keep = np.ones((scene["height"], scene["width"]), dtype=bool)
    for obj in scene["objects"]:
        x0, y0, x1, y1 = obj["projected_bbox"]
        grow = max(x1 - x0, y1 - y0) / 2 + 2
        keep[max(0, int(y0 - grow)) : int(np.ceil(y1 + grow)), max(0, int(x0 - grow)) : int(np.ceil(x1 + grow))] = False
    return keep


def _correlation(scene: dict, rendered: np.ndarray, source: np.ndarray, layout: dict) -> float:
    """Correlation (over pixels and channels) of the rendered ground with the source pixels `layout` maps it to."""
    camera = Camera.from_dict(scene["camera"], scene["width"], scene["height"])
    rows, cols = np.nonzero(_far_from_objects(scene))
    points = np.array([camera.ground_point(c + 0.5, r + 0.5)[:2] for r, c in zip(rows, cols)])
    px = np.floor(image_pixel(layout, points)).astype(int)
    expected = source[px[:, 1] % source.shape[0], px[:, 0] % source.shape[1]]
    return float(np.corrcoef(expected.ravel(), rendered[rows, cols].ravel())[0, 1])


def test_the_split_records_and_stores_the_image(ground_split):
    out, source = ground_split
    meta = load_meta(out, "val")
    data = source.read_bytes()
    assert meta["ground"]["width"] == meta["ground"]["height"] == SIDE and meta["ground"]["gsd"] is None
    assert (out / meta["ground"]["file"]).read_bytes() == data and meta["ground"]["file"].startswith("assets/ground/")
    for scene in load_scenes(out, "val"):
        layout = scene["ground"]
        assert layout["kind"] == "image" and layout["sha256"] == meta["ground"]["sha256"] and not layout["tiled"]
        assert layout["gsd_m"] == scene["gsd"] and "path" not in layout  # the worker's absolute path is not kept
        assert {o["cover"] for o in scene["objects"]} == {"any"}
    assert validate(out) == []


def test_the_rendered_ground_is_the_recorded_crop(ground_split):
    """The rendered ground, away from objects and their shadows, against the image pixels the recorded crop box and
    turn map each pixel to: the renders measure 0.99 (sun, sky and the fast preset's denoiser change levels, not
    pattern), so 0.9 is a loose floor; the same crop turned by 90, 180 or 270 degrees measures within +-0.2 of 0
    on this blob image, so under 0.5 says that the turn and the box, not just the colours, were followed."""
    out, source = ground_split
    pixels = np.asarray(Image.open(source).convert("RGB"), dtype=float)
    for scene in load_scenes(out, "val"):
        rendered = np.asarray(Image.open(image_file(out, "val", scene["image_index"])).convert("RGB"), dtype=float)
        layout = scene["ground"]
        assert _correlation(scene, rendered, pixels, layout) > 0.9
        for turn in (90, 180, 270):
            wrong = dict(layout, rotation_deg=(layout["rotation_deg"] + turn) % 360)
            assert abs(_correlation(scene, rendered, pixels, wrong)) < 0.5


def test_a_scene_rerenders_alone_identically_without_the_original_image(ground_split, tmp_path):
    out, source = ground_split
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    first_image = image_file(copy, "val", 1).read_bytes()
    first_scene = json.loads(scene_path(copy, "val", 1).read_text())
    image_file(copy, "val", 1).unlink()
    scene_path(copy, "val", 1).unlink()
    resume_without(source, copy)
    assert image_file(copy, "val", 1).read_bytes() == first_image
    again = json.loads(scene_path(copy, "val", 1).read_text())
    timing = ("render_s", "annotate_s", "threads")
    assert {k: v for k, v in again.items() if k != "render"} == {k: v for k, v in first_scene.items() if k != "render"}
    assert {k: v for k, v in again["render"].items() if k not in timing} == {k: v for k, v in first_scene["render"].items() if k not in timing}
    assert validate(copy) == []


def test_a_split_that_lost_its_image_refuses_to_resume_in_one_line(ground_split, tmp_path):
    out, _ = ground_split
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "assets")
    image_file(copy, "val", 1).unlink()
    proc = run_cli("render", "--out", str(copy), "--split", "val", "--resume", "-q", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "ground image assets/ground/" in lines[0] and "missing or altered" in lines[0]
    assert not image_file(copy, "val", 1).exists() and not (copy / "assets").exists()


def _write(path, kind: str) -> None:
    if kind == "text":
        path.write_text("a ground, honestly")
    elif kind == "small":
        Image.fromarray(smooth_colours(48, 4)).save(path)
    elif kind == "good":
        Image.fromarray(smooth_colours(128, 8)).save(path)


@pytest.mark.parametrize("kind, args, message", [
    ("none", [], "--ground {image}: no such file"),
    ("text", [], "not an image Pillow can read"),
    ("small", [], "48x48 px is too small (at least 64 px a side)"),
    ("good", ["--family", "clevr"], "--ground applies to --family aerial only"),
    ("good", ["--family", "aerial", "--resume"], "--ground cannot go with --resume"),
    ("good", ["--family", "aerial", "--ground-gsd", "0"], "--ground-gsd"),
], ids=["missing", "not-an-image", "too-small", "clevr", "resume", "bad-gsd"])  # fmt: skip
def test_an_unusable_ground_is_one_line_and_writes_nothing(tmp_path, kind, args, message):
    image = tmp_path / "ground.png"
    _write(image, kind)
    args = args or ["--family", "aerial"]
    proc = run_cli("render", "--out", str(tmp_path / "out"), "-n", "1", "--resolution", "64", "--ground", str(image), *args,
                   check=False)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and message.format(image=image) in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_ground_gsd_needs_a_ground(tmp_path):
    proc = run_cli("render", "--out", str(tmp_path / "out"), "-n", "1", "--family", "aerial", "--ground-gsd", "0.5", check=False)
    assert proc.returncode != 0 and proc.stderr.strip() == "error: --ground-gsd is the scale of a --ground image; give --ground IMAGE too"
    assert not (tmp_path / "out").exists()
