"""Any frame (issue #27 item 6): `render --resolution WxH` renders non-square images, N still means N x N,
and everything downstream takes them: annotations, COCO export, validate, Complete Cover, the feature
cache, bench, index and search. Each orientation (landscape 128x80, portrait 80x128) is rendered once
for real; the oracles are computed here from the recorded camera, the masks and the images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from PIL import Image
from pycocotools.coco import COCO

from benchmark.search import load_index
from clevr_ds.annotate import decode_mask
from clevr_ds.dataset import coco_path, load_meta, load_scenes, split_hash
from clevr_ds.shapes import placed_vertices, unit_mesh
from clevr_ds.standards import STANDARDS, Standard, claimed_by
from clevr_ds.validate import validate
from cli import main
from detailclip.backbones import load_backbone
from detailclip.cover import scheme_boxes
from detailclip.features import extract_features
from renderer.pool import MAX_SIDE
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint
from tests.test_project_oracles import check_block

pytestmark = pytest.mark.slow

SIZES = {"landscape": (128, 80), "portrait": (80, 128)}  # (width, height)
SCALES, OBJECTS = "0.15-0.2,0.2-0.3", "2-3"
RANDOM = ["--backbone", TINY_BACKBONE, "--pretrained", "none"]
K = 2


def wide(width: int, height: int) -> Standard:
    """A standard of split 'val' (2 images) whose content is what the `frame` fixture renders at width x height."""
    options = {"scales": SCALES, "resolution": f"{width}x{height}", "objects": OBJECTS, "family": "clevr", "gsd": None,
               "assets": None, "max_tilt": 0.0, "min_visible_pixels": 16,
               "engine": None, "samples": None, "denoise": None, "preset": "fast", "seed": 0}
    return Standard("CLEVR-DS wide", options, {"val": 2}, {})


@pytest.fixture(scope="session", params=list(SIZES))
def frame(request, tmp_path_factory):
    """(root, width, height) of a 2-image split of that orientation, rendered for real; treat as read-only."""
    width, height = SIZES[request.param]
    root = tmp_path_factory.mktemp(request.param) / "ds"
    run_cli("render", "--out", str(root), "--split", "val", "-n", "2", "--scales", SCALES, "--objects", OBJECTS,
            "--preset", "fast", "--resolution", f"{width}x{height}", "--quiet")
    return root, width, height


# The option.


@pytest.mark.parametrize("value, message", [
    ("0x5", "side 0 is under the minimum of 16"),
    ("12x", "'12x' is not N or WxH"),
    ("axb", "'axb' is not N or WxH"),
    ("100x100x3", "'100x100x3' is not N or WxH"),
    ("15", "side 15 is under the minimum of 16"),
    ("64x15", "side 15 is under the minimum of 16"),
    (f"64x{MAX_SIDE + 1}", f"side {MAX_SIDE + 1} exceeds the limit of {MAX_SIDE}"),
])  # fmt: skip
def test_a_malformed_resolution_is_one_usage_line_and_writes_nothing(capsys, tmp_path, value, message):
    out = tmp_path / "ds"
    assert main(["render", "--resolution", value, "--out", str(out), "-n", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Invalid value for '--resolution': ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_a_standard_accepts_its_resolution_restated_either_way_and_refuses_another(capsys, tmp_path):
    from cli_commands.render import render, standard_options

    for value in ("2240", "2240x2240"):
        ctx = render.make_context("render", ["--standard", "v1", "--resolution", value])
        assert standard_options(ctx, "v1")["resolution"] == 2240
    out = tmp_path / "out"
    assert main(["render", "--standard", "v1", "--resolution", "2240x1120", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == "error: --standard v1 fixes --resolution to 2240; leave --resolution out\n"
    assert not out.exists()


def test_claimed_by_compares_width_and_height(monkeypatch):
    meta = {"split": "val", "num_images": 2, "scales": SCALES, "objects": [2, 3], "seed": 0, "width": 128, "height": 80}
    assert claimed_by(meta) is None
    standard = wide(128, 80)
    monkeypatch.setitem(STANDARDS, "wide", standard)
    assert claimed_by(meta) == (standard, "val")
    assert claimed_by(dict(meta, width=80, height=128)) is None


# The render and its annotations.


def test_masks_boxes_and_scales_follow_the_frame(frame):
    root, width, height = frame
    meta = load_meta(root, "val")
    assert (meta["width"], meta["height"]) == (width, height)
    for scene in load_scenes(root, "val"):
        assert (scene["width"], scene["height"]) == (width, height)
        with Image.open(root / "images" / "val" / scene["image_filename"]) as image:
            assert image.size == (width, height)
        visible = [o for o in scene["objects"] if o["visible"]]
        assert len(visible) >= 2
        for obj in scene["objects"]:
            mask = decode_mask(obj["mask"])
            assert mask.shape == (height, width) and mask.sum() == obj["visible_pixels"] > 0
            (y0, x0), (y1, x1) = np.argwhere(mask).min(0), np.argwhere(mask).max(0)
            assert obj["bbox"] == [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]
            assert 0 <= x0 <= x1 < width and 0 <= y0 <= y1 < height
            assert obj["rel_scale"] == max(x1 - x0 + 1, y1 - y0 + 1) / max(width, height)
            assert obj["rel_scale"] == pytest.approx(obj["target_scale"], abs=1.5 / max(width, height))


def test_the_recorded_camera_projects_each_object_onto_its_rendered_mask(frame):
    """Blender's AUTO sensor fit (the sensor spans the longer side) agrees with the recorded K in both orientations."""
    root, width, height = frame
    shapes = load_meta(root, "val")["vocabulary"]["shapes"]
    for scene in load_scenes(root, "val"):
        K, w2c = np.asarray(scene["camera"]["K"]), np.asarray(scene["camera"]["world_to_camera"])
        assert K[0, 0] == K[1, 1] == pytest.approx(35 / 32 * max(width, height))
        assert (K[0, 2], K[1, 2]) == (width / 2, height / 2)
        for obj in scene["objects"]:
            vertices = placed_vertices(unit_mesh(shapes[obj["shape"]])[0], obj["size"], obj["rotation"], obj["3d_coords"])
            cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]
            pixels = (cam / cam[:, 2:]) @ K.T
            projected = [*pixels[:, :2].min(0), *pixels[:, :2].max(0)]
            x, y, w, h = obj["bbox"]
            assert np.abs(np.array([x, y, x + w, y + h]) - projected).max() <= 1.0, (scene["image_filename"], obj["shape"])


def test_the_split_validates_and_its_coco_export_has_the_frame(frame):
    root, width, height = frame
    assert validate(root) == []
    assert run_cli("validate", str(root)).stdout.splitlines()[0].endswith("OK")
    coco = COCO(str(coco_path(root, "val")))
    assert {(i["width"], i["height"]) for i in coco.loadImgs(coco.getImgIds())} == {(width, height)}
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(ann).shape == (height, width)
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height


@pytest.mark.parametrize("frame", ["landscape"], indirect=True)
def test_a_standard_may_fix_a_non_square_resolution(frame, monkeypatch, tmp_path):
    root, width, height = frame
    standard = wide(width, height)
    monkeypatch.setitem(STANDARDS, "wide", standard)
    out = tmp_path / "by-name"
    assert main(["render", "--standard", "wide", "--split", "val", "--out", str(out), "--quiet"]) == 0
    assert split_hash(out, "val") == split_hash(root, "val")
    assert claimed_by(load_meta(root, "val")) == (standard, "val")


# Complete Cover, features, bench, encode, index and search.


@pytest.mark.parametrize("width, height", [(128, 80), (80, 128), (2240, 1120), (97, 131)])
@pytest.mark.parametrize("k", [2, 3, 10])
def test_every_complete_cover_level_covers_the_whole_frame_with_proportional_windows(width, height, k):
    """Each level's windows cover every pixel centre, stay inside and span n/k of both sides (the frame's shape)."""
    boxes, levels = scheme_boxes("cc", height, width, k)
    centres_x, centres_y = np.arange(width) + 0.5, np.arange(height) + 0.5
    for level in levels.unique().tolist():
        level_boxes = boxes[levels == level].numpy()
        assert (level_boxes[:, :2] >= 0).all() and (level_boxes[:, 2] <= width).all() and (level_boxes[:, 3] <= height).all()
        covered = np.zeros((height, width), dtype=bool)
        for x0, y0, x1, y1 in level_boxes:
            covered |= ((centres_y >= y0) & (centres_y < y1))[:, None] & ((centres_x >= x0) & (centres_x < x1))[None, :]
        assert covered.all(), (level, k)
        cells = (level_boxes[:, 2] - level_boxes[:, 0]) / width * k
        assert np.allclose(cells, np.rint(cells)) and np.allclose((level_boxes[:, 3] - level_boxes[:, 1]) / height * k, cells)
    transposed, transposed_levels = scheme_boxes("cc", width, height, k)  # the other orientation: the same windows, turned
    assert torch.equal(transposed_levels, levels)
    assert sorted(map(tuple, transposed.tolist())) == sorted(map(tuple, boxes[:, [1, 0, 3, 2]].tolist()))


def test_cached_features_are_the_encoded_complete_cover_windows_of_the_frame(frame, tmp_path):
    root, width, height = frame
    backbone = load_backbone(TINY_BACKBONE, "none", seed=0)
    paths = sorted((root / "images" / "val").glob("*.png"))
    boxes, levels = scheme_boxes("cc", height, width, K)
    items = extract_features(backbone, paths, "cc", K, cache_dir=tmp_path, progress=False, antialias=False)
    again = extract_features(backbone, paths, "cc", K, cache_dir=tmp_path, progress=False, antialias=False)
    mean, std = torch.tensor(backbone.mean).view(3, 1, 1), torch.tensor(backbone.std).view(3, 1, 1)
    size = backbone.image_size
    for path, item, cached in zip(paths, items, again):
        np.testing.assert_array_equal(cached.data, item.data)
        assert torch.equal(item.levels, levels)
        with Image.open(path) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255
        crops = [F.interpolate(pixels[None, :, y0:y1, x0:x1], size=(size, size), mode="bilinear", align_corners=False)[0]
                 for x0, y0, x1, y1 in boxes.long().tolist()]  # fmt: skip
        expected = backbone.encode_images((torch.stack(crops) - mean) / std).cpu()
        torch.testing.assert_close(item.features, expected, atol=2e-3, rtol=0)


def test_bench_gives_finite_figures_that_follow_from_its_scores(frame, capsys, tmp_path):
    root, _, _ = frame
    out = tmp_path / "results"
    argv = ["bench", "--data", str(root), "--split", "val", "--out", str(out), "--model", "clip,cc-max", *RANDOM,
            "--templates", "short", "--cover-k", str(K), "--save-scores", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert sorted(r["method"] for r in records) == ["cc-max", "clip"]
    for record in records:
        assert record["n_images"] == 2 and record["split_hash"] == split_hash(root, "val")
        assert math.isfinite(record["metrics"]["overall"]["mAP"])
        with np.load(out / record["scores_file"]) as z:
            assert np.isfinite(z["scores"]).all()
            classes = z["classes"].tolist()
            check_block(record["metrics"]["overall"], z["scores"], z["labels_overall"], classes, int(z["k"]))
            for bucket, labels in zip(z["bucket_names"].tolist(), z["labels_buckets"]):
                check_block(record["metrics"]["buckets"][bucket], z["scores"], labels, classes, int(z["k"]))


def test_encode_index_and_search_take_the_frame(frame, capsys, tmp_path):
    root, width, height = frame
    checkpoint = make_checkpoint(tmp_path / "fusion.pt", k=K)
    vectors = tmp_path / "vectors.npz"
    assert main(["encode", "--checkpoint", str(checkpoint), "--images", str(root / "images"), "--out", str(vectors),
                 "--quiet"]) == 0  # fmt: skip
    with np.load(vectors) as z:
        assert z["vectors"].shape[0] == 2 and np.allclose(np.linalg.norm(z["vectors"], axis=1), 1, atol=1e-4)
    index = tmp_path / "index.npz"
    assert main(["index", str(root / "images"), "--out", str(index), "--method", "cc-max", "--cover-k", str(K), *RANDOM,
                 "--quiet"]) == 0  # fmt: skip
    assert load_index(index).index.counts.tolist() == [len(scheme_boxes("cc", height, width, K)[0])] * 2
    capsys.readouterr()
    assert main(["search", str(index), "a red cube", "--top", "2", "--sheet", str(tmp_path / "hits.png")]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == ["1", "2"] and all(math.isfinite(float(row[1])) for row in rows)
    assert (tmp_path / "hits.png").is_file()
