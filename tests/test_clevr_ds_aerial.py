"""The aerial family's sampler, class meshes and ground: deterministic, physical placement, sizes that hold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clevr_ds import aerial, ground
from clevr_ds.aerial_meshes import BUILDERS, PARTS
from clevr_ds.camera import Camera
from clevr_ds.families import sample_scene
from clevr_ds.sampling import SceneConfig, config_from_dict, config_to_dict
from clevr_ds.scales import parse_scales
from clevr_ds.shapes import mesh_with_parts, placed_vertices, unit_mesh
from clevr_ds.vocab import Vocabulary

AERIAL = Vocabulary.of_family("aerial")


def config(**kw) -> SceneConfig:
    args = dict(split="test", scales=tuple(parse_scales("0.02-0.12")), width=640, height=480, objects=(4, 8),
                vocabulary=AERIAL, family="aerial")
    return SceneConfig(**{**args, **kw})


@pytest.fixture(scope="module")
def scenes() -> list[dict]:
    return [sample_scene(config(), i) for i in range(12)]


def test_vocabulary_names_classes_by_shape_with_the_family_prompts():
    assert AERIAL.classes == ["car", "van", "truck", "bus", "small boat", "ship", "plane", "storage tank"]
    assert AERIAL.class_of("red", "car") == "car" and AERIAL.prompts == "aerial"
    assert Vocabulary.from_dict(AERIAL.to_dict()) == AERIAL
    assert "class_name" not in Vocabulary.load().to_dict()  # CLEVR's record is what it was before families
    with pytest.raises(ValueError, match="class_name"):
        Vocabulary.from_dict({**AERIAL.to_dict(), "class_name": "{size} {shape}"})


@pytest.mark.parametrize("shape", list(AERIAL.shapes))
def test_every_class_mesh_is_a_unit_mesh_along_x_with_valid_parts(shape):
    params = AERIAL.shapes[shape]
    vertices, faces, parts = mesh_with_parts(params)
    lo, hi = vertices.min(0), vertices.max(0)
    assert np.allclose((lo + hi) / 2, 0) and math.isclose(float(np.max(hi - lo)), 1.0)
    extent = hi - lo
    length, width, height = params["proportions"]
    assert extent[0] == pytest.approx(1.0) or params["mesh"] == "storage_tank"
    assert extent[1] / extent[0] == pytest.approx(width / length, rel=0.1) and extent[2] < 1.0
    assert len(parts) == len(faces) and set(parts) <= set(range(len(PARTS))) and 0 in parts
    assert all(len(f) >= 3 and max(f) < len(vertices) for f in faces)
    assert set(range(len(vertices))) == {i for f in faces for i in f}


def test_every_mesh_builder_has_a_class():
    assert sorted(BUILDERS) == sorted(p["mesh"] for p in AERIAL.shapes.values())


def test_sampling_is_deterministic_per_seed_split_and_index(scenes):
    assert json.dumps(sample_scene(config(), 3), sort_keys=True) == json.dumps(scenes[3], sort_keys=True)
    assert json.dumps(sample_scene(config(seed=1), 3)) != json.dumps(scenes[3])
    assert json.dumps(sample_scene(config(split="val"), 3)) != json.dumps(scenes[3])


def test_objects_stand_whole_on_a_cover_their_class_allows(scenes):
    for scene in scenes:
        for obj in scene["objects"]:
            allowed = {ground.COVERS.index(c) for c, w in AERIAL.shapes[obj["shape"]]["on"].items() if w > 0}
            covers = ground.cover_at(scene["ground"], np.array([*obj["footprint"], obj["3d_coords"][:2]]))
            assert set(covers.tolist()) <= allowed, (obj["class"], covers)
            assert obj["cover"] == ground.COVERS[covers[-1]]


def test_boats_and_ships_float_and_vehicles_follow_roads(scenes):
    objects = [(o, s) for s in scenes for o in s["objects"]]
    assert {o["cover"] for o, _ in objects if o["shape"] in ("ship", "small boat")} == {"water"}
    on_road = [(o, s) for o, s in objects if o["cover"] == "road"]
    assert on_road
    for obj, scene in on_road:
        xy = np.array(obj["3d_coords"][:2])
        angles = [r["angle_deg"] for r in scene["ground"]["roads"] if ground.on_road(r, xy)]
        off = min(abs((obj["rotation"] - a + 90) % 180 - 90) for a in angles)
        assert off < 5 * aerial.HEADING_JITTER_DEG


def test_footprints_never_intersect_and_boxes_stay_in_the_image(scenes):
    for scene in scenes:
        feet = [np.array(o["footprint"]) for o in scene["objects"]]
        for i in range(len(feet)):
            for j in range(i):
                assert aerial.footprints_apart(feet[i], feet[j], 0.0)
        for o in scene["objects"]:
            x0, y0, x1, y1 = o["projected_bbox"]
            assert 0 <= x0 < x1 <= scene["width"] and 0 <= y0 < y1 <= scene["height"]


def test_separating_axes_against_a_dense_point_test():
    rng = np.random.default_rng(0)
    unit = unit_mesh(AERIAL.shapes["bus"])[0]
    grid = np.stack(np.meshgrid(np.linspace(-12, 12, 300), np.linspace(-12, 12, 300)), -1).reshape(-1, 2)
    verdicts = []
    for _ in range(80):
        a = aerial.footprint(unit, 10.0, rng.uniform(0, 360), rng.uniform(-5, 5, 2))
        b = aerial.footprint(unit, 10.0, rng.uniform(0, 360), rng.uniform(-5, 5, 2))
        overlap = bool(np.any(_inside(grid, a) & _inside(grid, b)))
        apart = aerial.footprints_apart(a, b, 0.0)
        verdicts.append(apart)
        assert not (apart and overlap)
        if not apart:  # a separation smaller than the grid's spacing could hide between its points
            assert overlap or _gap(a, b) < 0.1
    assert 10 < sum(verdicts) < 70


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    dense = lambda p: np.concatenate([p + t * (np.roll(p, -1, 0) - p) for t in np.linspace(0, 1, 50)])  # noqa: E731
    return float(np.min(np.linalg.norm(dense(a)[:, None] - dense(b)[None], axis=2)))


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    edges = np.roll(poly, -1, 0) - poly
    cross = edges[:, 0] * (points[:, None, 1] - poly[:, 1]) - edges[:, 1] * (points[:, None, 0] - poly[:, 0])
    return np.all(cross >= 0, 1) | np.all(cross <= 0, 1)


def test_scale_mode_hits_each_target_and_records_the_gsd(scenes):
    for scene in scenes:
        camera = Camera.from_dict(scene["camera"], scene["width"], scene["height"])
        assert scene["gsd"] == pytest.approx(aerial.image_gsd(config(), aerial.ScaleRange(*scene["scale_range"])))
        for o in scene["objects"]:
            box = camera.project(placed_vertices(unit_mesh(AERIAL.shapes[o["shape"]])[0], o["size"], o["rotation"], o["3d_coords"]))
            extent = max(np.ptp(box[:, 0]), np.ptp(box[:, 1])) / max(scene["width"], scene["height"])
            assert extent == pytest.approx(o["target_scale"], rel=1e-3)


def test_nadir_camera_has_the_gsd_at_the_image_centre_and_north_up(scenes):
    scene = scenes[0]
    camera = Camera.from_dict(scene["camera"], scene["width"], scene["height"])
    a, b = camera.ground_point(320, 240), camera.ground_point(321, 240)
    assert np.linalg.norm(b - a) == pytest.approx(scene["gsd"], rel=1e-6)
    north = camera.ground_point(320, 100)
    assert north[1] > a[1] and abs(north[0] - a[0]) < 1e-6 and scene["tilt_deg"] == 0.0


def test_physical_mode_keeps_class_sizes_and_tilts_at_most_the_maximum():
    cfg = config(gsd=0.25, max_tilt_deg=25.0, width=800, height=800, scales=(aerial.physical_scales(AERIAL, 0.25, 800),))
    tilts = []
    for i in range(6):
        scene = sample_scene(cfg, i)
        tilts.append(scene["tilt_deg"])
        assert scene["gsd"] == 0.25
        for o in scene["objects"]:
            lo, hi = AERIAL.shapes[o["shape"]]["size_m"]
            assert lo <= o["size"] <= hi
    assert 0 < max(tilts) <= 25.0


def test_config_records_the_family_and_clevr_records_nothing_new():
    cfg = config(gsd=0.3, max_tilt_deg=10.0)
    data = config_to_dict(cfg)
    assert (data["family"], data["gsd"], data["max_tilt_deg"]) == ("aerial", 0.3, 10.0)
    assert config_from_dict(data) == cfg
    clevr = config_to_dict(SceneConfig(split="test", scales=tuple(parse_scales("0.01-0.1"))))
    assert not {"family", "gsd", "max_tilt_deg"} & set(clevr)


def test_an_impossible_request_is_one_line():
    from clevr_ds.sampling import SceneSamplingError

    with pytest.raises(SceneSamplingError, match="cannot place"):
        sample_scene(config(objects=(40, 40), scales=tuple(parse_scales("0.3-0.5")), max_scene_attempts=2), 0)


def test_cover_priority_and_texture_follow_the_layout():
    layout = {"kind": "procedural", "half_extent_m": 100.0, "field_seed": 3,
              "water": {"kind": "river", "angle_deg": 0.0, "offset_m": 50.0, "width_m": 20.0, "amp_m": 0.0,
                        "wavelength_m": 100.0, "phase": 0.0},
              "roads": [{"angle_deg": 90.0, "offset_m": 0.0, "width_m": 10.0}],
              "lots": [{"center_m": [30.0, -30.0], "size_m": [20.0, 10.0], "angle_deg": 0.0}]}
    cover = ground.cover_at(layout, np.array([[0.0, 50.0], [0.0, -50.0], [30.0, -30.0], [3.0, -30.0]]))
    assert cover.tolist() == [ground.WATER, ground.ROAD, ground.LOT, ground.ROAD]  # water over road over lot
    tex = ground.texture(layout, 200, 1.0)
    assert tex.shape == (200, 200, 3) and np.array_equal(tex, ground.texture(layout, 200, 1.0))
    water_row, col = 200 // 2 - 50, 150  # y = +50 is row 50 from the top (north up)
    assert tex[water_row, col, 2] > tex[water_row, col, 0]  # water is bluish
