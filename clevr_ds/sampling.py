"""Scene sampling: camera, lights and objects whose on-image size hits a target scale.

Everything is drawn from one `numpy.random.Generator` per scene, seeded from
(global seed, split, index), so any scene can be re-sampled alone and identically.

Placement rule (CLEVR-DS v1): objects rest on the ground plane; each object's projected 2D box
must lie inside the image and be at least `gap_px` away from every other object's box. Objects
therefore never occlude each other, and an object's visible box is its full projected box.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from infra.errors import ToolkitError

from . import GENERATOR_NAME, GENERATOR_VERSION
from .camera import Camera
from .dataset import image_name
from .ground_image import GroundImage
from .scales import ScaleRange, format_scales, parse_scales, range_for_image
from .shapes import lift, placed_vertices, unit_mesh
from .vocab import Vocabulary, class_name

CAMERA_DISTANCE = 11.5
CAMERA_ELEVATION_DEG = 32.0
CAMERA_AZIMUTH_DEG = -45.0
CAMERA_JITTER = 0.5
TARGET_JITTER = 0.25
FOCAL_MM = 35.0
# Sun lights relative to the camera's azimuth: (name, azimuth offset, elevation, strength, angle).
LIGHTS = (("key", 35.0, 50.0, 3.0, 8.0), ("fill", -70.0, 35.0, 0.9, 12.0), ("back", 180.0, 55.0, 1.2, 8.0))
LIGHT_JITTER_DEG = 8.0
RELATION_EPS = 0.2
SIZE_SOLVER_STEPS = 6


class SceneSamplingError(ToolkitError, ValueError):
    """A scene request that cannot be satisfied (e.g. too many objects at too large a scale)."""


@dataclass(frozen=True)
class SceneConfig:
    """Everything that determines the sampled scenes of one split."""

    split: str
    scales: tuple[ScaleRange, ...]
    width: int = 2240
    height: int = 2240
    objects: tuple[int, int] = (3, 10)
    seed: int = 0
    gap_px: float = 2.0
    max_object_attempts: int = 200
    max_scene_attempts: int = 20
    vocabulary: Vocabulary = field(default_factory=Vocabulary.load)
    family: str = "clevr"  # clevr_ds.families: which sampler (and renderer builder) makes the scenes
    gsd: float | None = None  # aerial: metres per pixel (physical sizes); None: sizes follow the scales
    max_tilt_deg: float = 0.0  # aerial: the largest off-nadir tilt of the camera
    ground: GroundImage | None = None  # aerial: a user's ground image (clevr_ds.ground_image); None: procedural ground


def scene_seed(global_seed: int, split: str, index: int) -> int:
    """The per-scene seed derived from (global seed, split, index)."""
    ss = np.random.SeedSequence([int(global_seed), zlib.crc32(split.encode()), int(index)])
    return int(ss.generate_state(1, np.uint32)[0])


def sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    az, el = math.radians(CAMERA_AZIMUTH_DEG), math.radians(CAMERA_ELEVATION_DEG)
    base = CAMERA_DISTANCE * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    location = base + rng.uniform(-CAMERA_JITTER, CAMERA_JITTER, 3)
    target = np.r_[rng.uniform(-TARGET_JITTER, TARGET_JITTER, 2), 0.0]
    return Camera.look_at(width, height, FOCAL_MM, location, target)


def sample_lights(rng: np.random.Generator, camera: Camera) -> list[dict]:
    cam_az = math.degrees(math.atan2(camera.location[1], camera.location[0]))
    lights = []
    for name, d_az, el, strength, angle in LIGHTS:
        az = math.radians(cam_az + d_az + rng.uniform(-LIGHT_JITTER_DEG, LIGHT_JITTER_DEG))
        el = math.radians(el + rng.uniform(-LIGHT_JITTER_DEG, LIGHT_JITTER_DEG))
        direction = [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]  # towards the light
        lights.append({"name": name, "type": "sun", "direction": direction, "strength": strength, "angle_deg": angle})
    return lights


def _box(points_px: np.ndarray) -> np.ndarray:
    return np.array([points_px[:, 0].min(), points_px[:, 1].min(), points_px[:, 0].max(), points_px[:, 1].max()])


def projected_box(camera: Camera, unit_vertices: np.ndarray, size: float, rotation: float, ground_xy) -> np.ndarray:
    """The image box [x0, y0, x1, y1] of a unit mesh of `size` resting on the ground at `ground_xy`."""
    center = [ground_xy[0], ground_xy[1], size * lift(unit_vertices)]
    return _box(camera.project(placed_vertices(unit_vertices, size, rotation, center)))


def solve_size(camera: Camera, unit_vertices: np.ndarray, rotation: float, ground_xy, target_px: float):
    """Find the world size whose projected box has longest side `target_px`; return (size, box)."""
    center = camera.to_camera([[ground_xy[0], ground_xy[1], 0.0]])[0]
    size = target_px * center[2] / camera.fx
    for _ in range(SIZE_SOLVER_STEPS):
        box = projected_box(camera, unit_vertices, size, rotation, ground_xy)
        extent = max(box[2] - box[0], box[3] - box[1])
        size *= target_px / extent
    return size, projected_box(camera, unit_vertices, size, rotation, ground_xy)


def _boxes_apart(box: np.ndarray, others: list[np.ndarray], gap: float) -> bool:
    return all(box[0] >= o[2] + gap or o[0] >= box[2] + gap or box[1] >= o[3] + gap or o[1] >= box[3] + gap for o in others)


def _place_objects(rng, config: SceneConfig, camera: Camera, scale_range: ScaleRange, meshes) -> list[dict] | None:
    vocab = config.vocabulary
    shapes, colors, materials = list(vocab.shapes), list(vocab.colors), list(vocab.materials)
    n = int(rng.integers(config.objects[0], config.objects[1] + 1))
    side = max(config.width, config.height)
    margin = config.gap_px
    placed: list[dict] = []
    for _ in range(n):
        shape = shapes[rng.integers(len(shapes))]
        color = colors[rng.integers(len(colors))]
        material = materials[rng.integers(len(materials))]
        rotation = float(rng.uniform(0.0, 360.0))
        target = scale_range.sample(rng)
        for _attempt in range(config.max_object_attempts):
            px = rng.uniform(margin, config.width - margin)
            py = rng.uniform(margin, config.height - margin)
            ground = camera.ground_point(px, py)
            if ground is None:
                continue
            size, box = solve_size(camera, meshes[shape], rotation, ground[:2], target * side)
            inside = box[0] >= margin and box[1] >= margin and box[2] <= config.width - margin and box[3] <= config.height - margin
            if inside and _boxes_apart(box, [o["projected_bbox"] for o in placed], config.gap_px):
                center = [float(ground[0]), float(ground[1]), size / 2]
                placed.append(
                    {
                        "shape": shape,
                        "color": color,
                        "material": material,
                        "class": class_name(color, shape),
                        "size": size,
                        "rotation": rotation,
                        "3d_coords": center,
                        "pixel_coords": camera.project([center])[0].tolist(),
                        "target_scale": target,
                        "projected_bbox": box,
                    }
                )
                break
        else:
            return None
    for o in placed:
        o["projected_bbox"] = [float(v) for v in o["projected_bbox"]]
    return placed


def directions(camera: Camera) -> dict[str, list[float]]:
    """CLEVR's direction vectors: behind = camera forward on the ground plane, left = -right."""
    axes = camera.axes_world()
    fwd = np.r_[axes["forward"][:2], 0.0]
    fwd /= np.linalg.norm(fwd)
    right = np.r_[axes["right"][:2], 0.0]
    right /= np.linalg.norm(right)
    vecs = {"behind": fwd, "front": -fwd, "left": -right, "right": right, "above": np.array([0.0, 0.0, 1.0]), "below": np.array([0.0, 0.0, -1.0])}
    return {k: v.tolist() for k, v in vecs.items()}


def relationships(objects: list[dict], dirs: dict[str, list[float]]) -> dict[str, list[list[int]]]:
    """For each of left/right/front/behind: relationships[name][i] lists j that are `name` of i."""
    coords = np.array([o["3d_coords"] for o in objects]) if objects else np.zeros((0, 3))
    out = {}
    for name in ("left", "right", "front", "behind"):
        proj = coords @ np.asarray(dirs[name])
        out[name] = [[j for j in range(len(objects)) if j != i and proj[j] - proj[i] > RELATION_EPS] for i in range(len(objects))]
    return out


def sample_scene(config: SceneConfig, index: int) -> dict:
    """Sample CLEVR scene `index` of the split: the scene JSON minus what only rendering can measure
    (`families.sample_scene` samples a scene of any family)."""
    seed = scene_seed(config.seed, config.split, index)
    rng = np.random.default_rng(seed)
    scale_range = range_for_image(list(config.scales), index)
    meshes = {name: unit_mesh(params)[0] for name, params in config.vocabulary.shapes.items()}
    for _ in range(config.max_scene_attempts):
        camera = sample_camera(rng, config.width, config.height)
        lights = sample_lights(rng, camera)
        objects = _place_objects(rng, config, camera, scale_range, meshes)
        if objects is not None:
            break
    else:
        raise cannot_place(config, index, scale_range, "non-overlapping objects")
    return scene_record(config, index, seed, scale_range, camera, lights, directions(camera), objects)


def cannot_place(config: SceneConfig, index: int, scale_range: ScaleRange, what: str) -> SceneSamplingError:
    return SceneSamplingError(
        f"cannot place {config.objects[0]}-{config.objects[1]} {what} at scale {scale_range} "
        f"in a {config.width}x{config.height} image (scene {index}, {config.max_scene_attempts} tries); "
        "ask for fewer objects or smaller scales"
    )


def scene_record(config: SceneConfig, index: int, seed: int, scale_range: ScaleRange, camera: Camera, lights: list[dict],
                 dirs: dict, objects: list[dict], **family_fields) -> dict:
    """The scene JSON of a sampled scene; a family's own fields follow the generator's."""
    return {
        "image_index": index,
        "image_filename": f"{image_name(config.split, index)}.png",
        "split": config.split,
        "width": config.width,
        "height": config.height,
        "seed": seed,
        "global_seed": config.seed,
        "scale_range": [scale_range.lo, scale_range.hi],
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION},
        **family_fields,
        "camera": camera.to_dict(),
        "lights": lights,
        "directions": dirs,
        "relationships": relationships(objects, dirs),
        "objects": objects,
    }  # fmt: skip


def config_to_dict(config: SceneConfig) -> dict:
    return {
        "split": config.split,
        "scales": format_scales(list(config.scales)),
        "width": config.width,
        "height": config.height,
        "objects": list(config.objects),
        "seed": config.seed,
        "gap_px": config.gap_px,
        "max_object_attempts": config.max_object_attempts,
        "max_scene_attempts": config.max_scene_attempts,
        "vocabulary": config.vocabulary.to_dict(),
        **({} if config.family == "clevr" else {"family": config.family, "gsd": config.gsd, "max_tilt_deg": config.max_tilt_deg}),
        **({} if config.ground is None else {"ground": config.ground.to_dict()}),  # absent: metas made before --ground
    }


def config_from_dict(data: dict) -> SceneConfig:
    return SceneConfig(
        split=data["split"],
        scales=tuple(parse_scales(data["scales"])),
        width=int(data["width"]),
        height=int(data["height"]),
        objects=tuple(data["objects"]),
        seed=int(data["seed"]),
        gap_px=float(data["gap_px"]),
        max_object_attempts=int(data["max_object_attempts"]),
        max_scene_attempts=int(data["max_scene_attempts"]),
        vocabulary=Vocabulary.from_dict(data["vocabulary"]),
        family=data.get("family", "clevr"),
        gsd=data.get("gsd"),
        max_tilt_deg=float(data.get("max_tilt_deg", 0.0)),
        ground=GroundImage.from_dict(data["ground"]) if data.get("ground") else None,
    )
