"""Independent oracles: every expectation here is derived without the code under test.

- boxes / rel_scale from hand-made (non-square) id maps, with np.argwhere and hand arithmetic;
- retrieval figures from scikit-learn (AP) and brute-force loops (hit@k, precision@k, R-precision)
  under the pessimistic tie rule derived independently (positives nudged below their ties);
- CLEVR relationships from the 3-D coordinates and the camera matrix stored in the scene JSON;
- `encode` vectors from a direct open_clip forward of patches cut by plain slicing +
  F.interpolate, followed by the fusion model.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import average_precision_score

from clevr_ds.annotate import annotate_objects, decode_mask

IGNORE = -1


# --------------------------------------------------------------------------- retrieval oracle
def pessimistic_scores(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Scores with every relevant image pushed below the images it ties with, and nothing else moved.

    Independent statement of the pessimistic rule: among equal scores the irrelevant images rank
    first. Subtracting less than half the smallest gap between distinct scores from the positives
    realises exactly that order while keeping every other pair's order; distinct nudges per positive
    also split runs of tied positives, which scikit-learn would otherwise count as one threshold
    (their order among themselves does not change mean_j j / r_j).
    """
    s = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels) == 1
    distinct = np.unique(s)
    eps = np.diff(distinct).min() / 4 if len(distinct) > 1 else 1.0
    nudge = np.zeros_like(s)
    nudge[positive] = eps * (1 + np.arange(positive.sum()) / (positive.sum() + 1))
    return s - nudge


def oracle_query(scores, labels, hit_ks=(1, 5, 10), pk=10) -> dict | None:
    """Figures of one query: AP by scikit-learn, the rest by counting in a plain sorted list."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    keep = labels != IGNORE
    s, y = scores[keep], labels[keep]
    if not (y == 1).any():
        return None
    strict = pessimistic_scores(s, y)
    out = {"AP": float(average_precision_score(y == 1, strict))}
    ranked = [lab for _, lab in sorted(zip(-strict, y), key=lambda t: t[0])]
    n_rel = int((y == 1).sum())
    top = lambda k: sum(1 for lab in ranked[:k] if lab == 1)  # noqa: E731
    for k in hit_ks:
        out[f"hit@{k}"] = float(top(k) > 0)
    out[f"precision@{pk}"] = top(pk) / pk
    out["r_precision"] = top(n_rel) / n_rel
    out["n_positives"] = n_rel
    out["n_negatives"] = int((labels == 0).sum())
    return out


def check_block(block: dict, scores, labels, classes, k: int) -> None:
    """Every per-class figure and every mean of an `evaluate` block against the oracle."""
    hit_ks = tuple(sorted({1, 5, k}))
    rows = {c: oracle_query(scores[q], labels[q], hit_ks, k) for q, c in enumerate(classes)}
    names = ["AP", *(f"hit@{h}" for h in hit_ks), f"precision@{k}", "r_precision"]
    for c, row in rows.items():
        stored = block["per_class"][c]
        if row is None:
            assert all(stored[m] is None for m in names), c
            assert stored["n_positives"] == 0
            continue
        for m in names:
            assert stored[m] == pytest.approx(row[m], abs=1e-9), (c, m)
        assert (stored["n_positives"], stored["n_negatives"]) == (row["n_positives"], row["n_negatives"]), c
    defined = [r for r in rows.values() if r is not None]
    assert block["n_queries"] == len(defined)
    assert block["n_queries_without_positives"] == len(classes) - len(defined)
    assert block["n_positives"] == int((np.asarray(labels) == 1).sum())
    assert block["n_negatives"] == int((np.asarray(labels) == 0).sum())
    for m in names:
        key = "mAP" if m == "AP" else m
        if defined:
            assert block[key] == pytest.approx(sum(r[m] for r in defined) / len(defined), abs=1e-9), key
        else:
            assert block[key] is None


def test_pessimistic_oracle_by_hand():
    # Three tied images, two relevant: ranks 2 and 3 -> AP = (1/2 + 2/3) / 2, hit@1 = 0, R-precision = 1/2.
    row = oracle_query([0.5, 0.5, 0.5], [1, 1, 0], hit_ks=(1, 2), pk=2)
    assert row["AP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert (row["hit@1"], row["hit@2"], row["precision@2"], row["r_precision"]) == (0.0, 1.0, 0.5, 0.5)


@pytest.mark.parametrize("seed", range(4))
def test_evaluate_every_stored_figure_against_sklearn_and_loops(seed):
    from benchmark.evaluation import evaluate

    rng = np.random.default_rng(seed)
    q, n, k = 5, 30, 7
    scores = (rng.integers(0, 6, (q, n)) / 6).astype(np.float32)  # six levels: many ties
    overall = (rng.random((q, n)) < 0.3).astype(np.int8)
    overall[rng.random((q, n)) < 0.1] = IGNORE
    overall[-1] = np.where(overall[-1] == 1, 0, overall[-1])  # a query without positives
    buckets = np.stack([np.where((overall == 1) & (rng.random((q, n)) < 0.5), IGNORE, overall),
                        np.where(overall == 1, IGNORE, overall)])  # second bucket: no positive at all
    classes = [f"c{i}" for i in range(q)]
    out = evaluate(scores, classes, overall, ["b0", "b1"], buckets, k=k, n_resamples=20)
    check_block(out["overall"], scores, overall, classes, k)
    check_block(out["buckets"]["b0"], scores, buckets[0], classes, k)
    check_block(out["buckets"]["b1"], scores, buckets[1], classes, k)
    assert out["buckets"]["b1"]["mAP"] is None


# --------------------------------------------------------------------------- non-square annotation
def _scene(width: int, height: int, n: int) -> dict:
    return {"width": width, "height": height, "objects": [{} for _ in range(n)]}


@pytest.mark.parametrize("width,height", [(60, 150), (150, 60), (97, 31)])
def test_non_square_boxes_and_rel_scale_from_argwhere(width, height):
    ids = np.zeros((height, width), dtype=np.int64)
    ids[5:25, 3:43] = 1  # 40 wide, 20 tall rectangle
    ids[height - 9:height - 2, width - 7] = 2  # a 1 px wide, 7 px tall bar at the border region
    ys, xs = np.ogrid[:height, :width]  # a disc, radius 6, centred at (20, 28)
    ids[((ys - 28) ** 2 + (xs - 20) ** 2 <= 36) & (ids == 0)] = 3
    ids[0, 0] = 4  # a single pixel in the corner
    scene = _scene(width, height, 5)  # object 5 is not in the map at all
    annotate_objects(scene, ids, min_visible_pixels=2)
    longer = max(width, height)
    for i, obj in enumerate(scene["objects"]):
        points = np.argwhere(ids == i + 1)  # (row, col)
        if len(points) == 0:
            assert obj["visible_pixels"] == 0 and obj["visible"] is False
            continue
        (y0, x0), (y1, x1) = points.min(0), points.max(0)
        expected = [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]
        assert obj["bbox"] == expected, i
        assert obj["visible_pixels"] == len(points)
        assert obj["area_frac"] == pytest.approx(len(points) / (width * height))
        assert obj["rel_scale"] == pytest.approx(max(expected[2], expected[3]) / longer, abs=1e-12), i
        mask = decode_mask(obj["mask"])
        assert mask.shape == (height, width) and np.array_equal(mask, ids == i + 1)
    # hand arithmetic, independent of any helper: the rectangle is 40 px wide
    assert scene["objects"][0]["rel_scale"] == pytest.approx(40 / longer)
    assert scene["objects"][1]["rel_scale"] == pytest.approx(7 / longer)
    assert scene["objects"][2]["rel_scale"] == pytest.approx(13 / longer)
    assert scene["objects"][3]["visible"] is False and scene["objects"][3]["rel_scale"] == pytest.approx(1 / longer)


def test_tall_image_divides_by_its_height_not_its_width():
    """60 px wide, 150 px tall: a 30 px object is 30/150 = 0.2 of the longer side (0.5 of the width)."""
    ids = np.zeros((150, 60), dtype=np.int64)
    ids[100:130, 10:20] = 1  # 10 wide, 30 tall
    ids[10:20, 5:35] = 2  # 30 wide, 10 tall
    scene = _scene(60, 150, 2)
    annotate_objects(scene, ids)
    assert [o["rel_scale"] for o in scene["objects"]] == pytest.approx([0.2, 0.2])
    assert scene["objects"][0]["bbox"] == [10, 100, 10, 30] and scene["objects"][1]["bbox"] == [5, 10, 30, 10]


def test_annotation_refuses_an_id_map_of_the_wrong_orientation():
    with pytest.raises(ValueError, match="id map is 60x150"):
        annotate_objects(_scene(150, 60, 1), np.zeros((150, 60), dtype=np.int64))


# --------------------------------------------------------------------------- relationships
def _expected_relationships(scene: dict) -> dict[str, list[list[int]]]:
    """CLEVR's rule from first principles: the camera's right axis (first row of world_to_camera,
    OpenCV convention) and its viewing direction (third row), flattened onto the ground; j is
    `name` of i when (x_j - x_i) . direction > 0.2."""
    rot = np.asarray(scene["camera"]["world_to_camera"], dtype=float)[:3, :3]
    right = np.array([rot[0, 0], rot[0, 1], 0.0])
    forward = np.array([rot[2, 0], rot[2, 1], 0.0])
    right, forward = right / np.linalg.norm(right), forward / np.linalg.norm(forward)
    axes = {"right": right, "left": -right, "behind": forward, "front": -forward}
    coords = [np.asarray(o["3d_coords"], dtype=float) for o in scene["objects"]]
    out = {}
    for name, axis in axes.items():
        out[name] = [[j for j in range(len(coords)) if j != i and float((coords[j] - coords[i]) @ axis) > 0.2]
                     for i in range(len(coords))]
    return out


def _check_relationships(scene: dict) -> None:
    expected = _expected_relationships(scene)
    assert set(scene["relationships"]) == set(expected)
    for name in expected:
        assert [sorted(js) for js in scene["relationships"][name]] == expected[name], name
    n = len(scene["objects"])
    if n >= 2:
        for name in expected:
            assert any(expected[name]), f"no {name!r} relationship among {n} objects"
    # Camera geometry cross-check: "right" of i also lies to the right in the image for objects
    # at the same depth band; here: the camera's right axis projects to +x in pixels.
    rot = np.asarray(scene["camera"]["world_to_camera"], dtype=float)[:3, :3]
    assert rot[0] @ np.asarray(scene["directions"]["right"]) > 0.9
    assert rot[2] @ np.asarray(scene["directions"]["behind"]) > 0.5  # behind = away from the camera


@pytest.mark.parametrize("index", range(6))
def test_sampled_relationships_match_the_geometry(index):
    from clevr_ds.sampling import SceneConfig, sample_scene
    from clevr_ds.scales import parse_scales

    config = SceneConfig(split="test", scales=tuple(parse_scales("0.02-0.1")), objects=(5, 8), width=320, height=240)
    _check_relationships(sample_scene(config, index))


def test_rendered_relationships_match_the_geometry(tiny_dataset):
    from clevr_ds.dataset import load_scenes

    for scene in load_scenes(tiny_dataset, "val"):
        _check_relationships(scene)


# --------------------------------------------------------------------------- encode
def _cut(image: torch.Tensor, box, size: int) -> torch.Tensor:
    """Slice an integer box out of [3, H, W] and resize it bilinearly (the documented equivalent
    of extract_patches(antialias=False) when downscaling)."""
    x0, y0, x1, y1 = box
    crop = image[:, y0:y1, x0:x1][None]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]


@pytest.mark.slow
def test_encode_equals_open_clip_forward_then_fusion(tmp_path):
    """cc@2 on 96 x 128 images: the whole image, then the 4 cells of 48 x 64 px (method notes:
    k = 2 gives levels of 1 and 4 windows); each cut by slicing, resized, CLIP-normalised, encoded
    by open_clip directly, then fused by the checkpoint's model."""
    import open_clip

    from detailclip.checkpoint import load_checkpoint, save_checkpoint
    from cli_commands.detailclip import encode
    from detailclip.fusion import build_fusion
    from tests.benchmark_fixtures import TINY_BACKBONE
    from click.testing import CliRunner

    from conftest import ROOT

    open_clip.add_model_config(ROOT / "detailclip" / "model_configs")  # the architecture file, read by open_clip
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(3):
        pixels = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        pixels[10 + 10 * i:40 + 10 * i, 20:60] = [200, 30, 30]
        paths.append(folder / f"img{i}.png")
        Image.fromarray(pixels).save(paths[-1])

    torch.manual_seed(0)
    model = build_fusion("tiny", 32, dropout=0.0)
    config = {"backbone": TINY_BACKBONE, "pretrained": "none", "backbone_seed": 0, "image_size": None,
              "scheme": "cc", "k": 2, "antialias": False}
    save_checkpoint(tmp_path / "fusion.pt", model, config)
    out = tmp_path / "vectors.npz"
    result = CliRunner().invoke(encode, ["--checkpoint", str(tmp_path / "fusion.pt"), "--images", str(folder),
                                         "--out", str(out), "--cache-dir", "none", "--quiet"],
                                standalone_mode=False, catch_exceptions=True)
    assert result.exception is None, result.output
    saved = np.load(out)
    assert saved["paths"].tolist() == [p.name for p in paths]

    # Direct open_clip: the same architecture, random weights from the same seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip = open_clip.create_model(TINY_BACKBONE, pretrained=None).eval()
    size = clip.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = torch.tensor(clip.visual.image_mean or open_clip.OPENAI_DATASET_MEAN).view(3, 1, 1)
    std = torch.tensor(clip.visual.image_std or open_clip.OPENAI_DATASET_STD).view(3, 1, 1)
    boxes = [(0, 0, 128, 96), (0, 0, 64, 48), (64, 0, 128, 48), (0, 48, 64, 96), (64, 48, 128, 96)]
    fusion, _ = load_checkpoint(tmp_path / "fusion.pt", device="cpu")
    fusion.eval()
    expected = []
    with torch.no_grad():
        for path in paths:
            image = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
            patches = torch.stack([(_cut(image, b, size) - mean) / std for b in boxes])
            features = F.normalize(clip.encode_image(patches).float(), dim=-1)
            features = features.half().float()  # the feature cache stores fp16
            expected.append(F.normalize(fusion(features[None]), dim=-1)[0])
    expected = torch.stack(expected).numpy()
    np.testing.assert_allclose(saved["vectors"], expected, atol=1e-5)  # measured: 9e-8
    # and the vectors are distinct per image (a constant output would also be "close" to nothing)
    assert np.abs(saved["vectors"][0] - saved["vectors"][1]).max() > 1e-3
