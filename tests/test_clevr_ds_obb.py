"""Oriented boxes (issue #27 item 4): the visible mask's minimum-area rectangle against independent
constructions (rasterised rectangles of known centre, size and angle; a brute force over angles; a hand
case), the heading box against a hand computation on a nadir camera, the annotations that store them,
and `validate`, which checks stored boxes against masks and geometry."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from clevr_ds.annotate import annotate_objects, decode_mask
from clevr_ds.camera import Camera
from clevr_ds.dataset import load_vocabulary, scene_path
from clevr_ds.obb import UnitMeshes, contains, heading_obb, mask_obb, object_obbs
from clevr_ds.shapes import placed_vertices
from clevr_ds.validate import validate
from clevr_ds.vocab import Vocabulary

SHAPE = (96, 128)


def raster(centre, size, angle_deg: float, shape=SHAPE) -> np.ndarray:
    """The pixels whose centre lies in the rectangle of `size` (length, width) at `centre`, its length at `angle_deg`."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    x, y, a = cols + 0.5 - centre[0], rows + 0.5 - centre[1], np.deg2rad(angle_deg)
    return (np.abs(x * np.cos(a) + y * np.sin(a)) <= size[0] / 2) & (np.abs(y * np.cos(a) - x * np.sin(a)) <= size[1] / 2)


def corners_of(centre, size, angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    u, v = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    return np.array([np.asarray(centre) + su * size[0] / 2 * u + sv * size[1] / 2 * v for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))])


def sides(box) -> tuple[float, float, float]:
    """Long side, short side and the long side's angle in degrees mod 180 of a 4-corner box."""
    b = np.asarray(box)
    e, f = b[1] - b[0], b[2] - b[1]
    long, short = (e, f) if np.hypot(*e) >= np.hypot(*f) else (f, e)
    return float(np.hypot(*long)), float(np.hypot(*short)), float(np.degrees(np.arctan2(long[1], long[0])) % 180)


def assert_in_module_order(box) -> None:
    """A rectangle, clockwise on the image (y down), starting at the corner of smallest x + y."""
    b = np.asarray(box)
    x, y = b[:, 0], b[:, 1]
    assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0
    assert np.argmin(x + y + 1e-9 * y) == 0
    for i in range(4):  # right angles, to the rounding of the corners (1e-3 px)
        e, f = b[(i + 1) % 4] - b[i], b[(i + 2) % 4] - b[(i + 1) % 4]
        assert abs(np.dot(e, f)) < 2e-3 * (np.linalg.norm(e) + np.linalg.norm(f))


@pytest.mark.parametrize("angle", [0, 10, 30, 45, 60, 77.5, 90, 135, 163])
def test_mask_obb_recovers_a_rasterised_rotated_rectangle(angle):
    centre, size = (63.3, 47.8), (40.0, 14.0)
    mask = raster(centre, size, angle)
    box = mask_obb(mask)
    assert_in_module_order(box)
    assert contains(box, mask)
    long, short, found = sides(box)
    # The squares of the pixels whose centres are inside lie within half a pixel diagonal of the rectangle.
    assert size[0] - 1.5 <= long <= size[0] + 2 ** 0.5 and size[1] - 1.5 <= short <= size[1] + 2 ** 0.5
    assert min(abs(found - angle % 180), 180 - abs(found - angle % 180)) < 1.0
    true = corners_of(centre, size, angle)
    assert max(np.min(np.linalg.norm(np.asarray(box) - c, axis=1)) for c in true) < 1.5


def brute_force_area(mask: np.ndarray, steps: int = 3600) -> float:
    """The least area over `steps` angles in [0, 90) of the rectangle containing every set pixel's 4 corners."""
    rows, cols = np.nonzero(mask)
    pts = np.concatenate([np.stack([cols + dx, rows + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(float)
    a = np.deg2rad(np.arange(steps) * 90 / steps)
    pu = np.outer(np.cos(a), pts[:, 0]) + np.outer(np.sin(a), pts[:, 1])
    pv = np.outer(-np.sin(a), pts[:, 0]) + np.outer(np.cos(a), pts[:, 1])
    return float(np.min((pu.max(1) - pu.min(1)) * (pv.max(1) - pv.min(1))))


@pytest.mark.parametrize("seed", range(6))
def test_mask_obb_is_the_minimum_over_all_angles(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=bool)
    for _ in range(int(rng.integers(1, 4))):  # a union of rectangles: convex or not, any orientation
        mask |= raster(rng.uniform(40, 80, 2), rng.uniform(4, 30, 2), rng.uniform(0, 180))
    box = mask_obb(mask)
    long, short, _ = sides(box)
    brute = brute_force_area(mask)
    assert long * short <= brute + 0.02 and brute <= long * short * 1.002
    assert contains(box, mask)
    assert_in_module_order(box)


def test_mask_obb_hand_cases():
    assert mask_obb(np.zeros(SHAPE, dtype=bool)) is None
    one = np.zeros(SHAPE, dtype=bool)
    one[5, 7] = True
    assert mask_obb(one) == [[7.0, 5.0], [8.0, 5.0], [8.0, 6.0], [7.0, 6.0]]
    block = np.zeros(SHAPE, dtype=bool)
    block[10:20, 30:70] = True
    assert mask_obb(block) == [[30.0, 10.0], [70.0, 10.0], [70.0, 20.0], [30.0, 20.0]]
    diagonal = np.zeros(SHAPE, dtype=bool)
    diagonal[np.arange(10), np.arange(10)] = True  # hull (0,0) (1,0) (10,9) (10,10) (9,10) (0,1): a 10√2 x √2 strip
    assert mask_obb(diagonal) == [[0.5, -0.5], [10.5, 9.5], [9.5, 10.5], [-0.5, 0.5]]


def nadir_camera(width: int = 200, height: int = 100, altitude: float = 10.0) -> Camera:
    """A camera at (0, 0, altitude) looking straight down, image x along world x and image y along world -y."""
    w2c = np.eye(4)
    w2c[:3, :3] = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]
    w2c[:3, 3] = [0, 0, altitude]
    return Camera(width, height, 32.0, (0.0, 0.0, altitude), w2c)  # fx = 32 / 32 * 200 px


def test_heading_obb_on_a_nadir_camera_matches_a_hand_computation():
    r = 30.0
    a = np.deg2rad(r)
    box = np.array([[x, y, z] for x in (-2, 2) for y in (-1, 1) for z in (0, 1)], dtype=float)  # 4 x 2 x 1, resting on z = 0
    vertices = box @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).T
    found = heading_obb(nadir_camera(), vertices, r, (0.0, 0.0, 0.5))
    # The top face (9 units from the camera) is the larger: 200 / 9 px a unit, centred on the image centre
    # (100, 50); image y runs along world -y, so the heading (cos r, sin r) shows as (cos r, -sin r).
    k, c = 200 / 9, np.array([100.0, 50.0])
    u, v = np.array([np.cos(a), -np.sin(a)]), np.array([np.sin(a), np.cos(a)])
    expected = [c + k * (2 * su * u + sv * v) for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    start = int(np.argmin([p[0] + p[1] for p in expected]))
    expected = np.roll(expected, -start, axis=0)
    np.testing.assert_allclose(found, expected, atol=1e-3)
    assert_in_module_order(found)


def test_heading_obb_on_an_oblique_camera_contains_the_model_along_its_heading():
    camera = Camera.look_at(160, 120, 35.0, (7.0, -6.5, 6.5), (0.0, 0.0, 0.0))
    unit = UnitMeshes(Vocabulary.load())["cube"]
    centre, size, r = (1.0, 0.5, 0.35), 0.7, 40.0
    vertices = placed_vertices(unit, size, r, centre)
    box = np.asarray(heading_obb(camera, vertices, r, centre))
    assert_in_module_order(box)
    p = camera.project(vertices)[:, :2]
    for a, b in zip(box, np.roll(box, -1, axis=0)):  # every projected vertex is on the inner side of every edge
        e = b - a
        assert np.min(e[0] * (p[:, 1] - a[1]) - e[1] * (p[:, 0] - a[0])) >= -0.01 * np.linalg.norm(e)
    step = 1e-6 * np.array([np.cos(np.deg2rad(r)), np.sin(np.deg2rad(r)), 0.0])
    ahead = camera.project(np.array([np.add(centre, step), np.subtract(centre, step)]))[:, :2]
    heading = (ahead[0] - ahead[1]) / np.linalg.norm(ahead[0] - ahead[1])
    edges = [(b - a) / np.linalg.norm(b - a) for a, b in zip(box[:2], box[1:3])]
    assert max(abs(float(np.dot(e, heading))) for e in edges) > 1 - 1e-6  # one side runs along the projected heading


def scene_with_cube(ids_shape=SHAPE) -> dict:
    camera = Camera.look_at(ids_shape[1], ids_shape[0], 35.0, (7.0, -6.5, 6.5), (0.0, 0.0, 0.0))
    cube = {"shape": "cube", "size": 0.7, "rotation": 40.0, "3d_coords": [1.0, 0.5, 0.35]}
    return {"width": ids_shape[1], "height": ids_shape[0], "camera": camera.to_dict(), "objects": [dict(cube), dict(cube, rotation=5.0)]}


def test_annotate_stores_oriented_boxes_only_when_given_the_meshes():
    ids = np.zeros(SHAPE, dtype=np.int64)
    ids[raster((50, 40), (30, 12), 25)] = 1  # object 1 (index 1) is not seen at all
    plain, boxed = scene_with_cube(), scene_with_cube()
    annotate_objects(plain, ids)
    meshes = UnitMeshes(Vocabulary.load())
    annotate_objects(boxed, ids, meshes=meshes)
    for p, b in zip(plain["objects"], boxed["objects"]):
        assert list(b) == list(p) + ["obb", "heading_obb"]  # the CLEVR scenes keep their keys, in order
        assert {k: b[k] for k in p} == p
    seen, hidden = boxed["objects"]
    assert seen["obb"] == mask_obb(ids == 1) and contains(seen["obb"], decode_mask(seen["mask"]))
    assert hidden["obb"] is None
    expected = object_obbs(boxed, [ids == 1, ids == 2], meshes)
    assert [o["heading_obb"] for o in boxed["objects"]] == [e["heading_obb"] for e in expected]
    assert seen["heading_obb"] != hidden["heading_obb"]  # 40 and 5 degrees


@pytest.fixture(scope="module")
def boxed_dataset(tiny_dataset, tmp_path_factory):
    """The tiny split with every object's oriented boxes stored, as the aerial family's renders store them."""
    root = tmp_path_factory.mktemp("boxed") / "ds"
    shutil.copytree(tiny_dataset, root)
    meshes = UnitMeshes(load_vocabulary(root, "val"))
    for i in range(4):
        path = scene_path(root, "val", i)
        scene = json.loads(path.read_text())
        masks = [decode_mask(o["mask"]) for o in scene["objects"]]
        for obj, boxes in zip(scene["objects"], object_obbs(scene, masks, meshes)):
            obj.update(boxes)
        path.write_text(json.dumps(scene))
    return root


def test_validate_accepts_stored_boxes_that_agree(boxed_dataset):
    assert validate(boxed_dataset) == []


def _shift(box, dx: float) -> list:
    return [[x + dx, y] for x, y in box]


def _grown(box, factor: float) -> list:
    b = np.asarray(box)
    return (b.mean(0) + factor * (b - b.mean(0))).tolist()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: dict(o, obb=_shift(o["obb"], 2.0)), "object 0: obb [["),
        (lambda o: dict(o, obb=_grown(o["obb"], 1.01)), "disagrees with its mask's minimum-area rectangle"),
        (lambda o: dict(o, obb=None), "obb None disagrees"),
        (lambda o: dict(o, heading_obb=_shift(o["heading_obb"], 0.5)), "disagrees with its projected model"),
        (lambda o: dict(o, obb=o["obb"][:3]), "objects[0].obb: expected a list of 4, got list"),
        (lambda o: dict(o, heading_obb=[[1, 2, 3]] * 4), "objects[0].heading_obb[0]: expected a list of 2"),
    ],
)
def test_validate_flags_an_edited_box(boxed_dataset, tmp_path, edit, message):
    root = tmp_path / "ds"
    shutil.copytree(boxed_dataset, root)
    path = scene_path(root, "val", 1)
    scene = json.loads(path.read_text())
    scene["objects"][0] = edit(scene["objects"][0])
    path.write_text(json.dumps(scene))
    problems = validate(root)
    assert len(problems) == 1 and message in problems[0] and "CLEVR-DS_val_000001" in problems[0], problems


def test_a_box_that_misses_part_of_the_mask_is_named(boxed_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(boxed_dataset, root)
    path = scene_path(root, "val", 2)
    scene = json.loads(path.read_text())
    scene["objects"][1]["obb"] = _grown(scene["objects"][1]["obb"], 0.8)
    path.write_text(json.dumps(scene))
    assert validate(root) == [f"CLEVR-DS_val_000002 object 1: obb {str(scene['objects'][1]['obb'])[:37]}... does not contain its mask"]
