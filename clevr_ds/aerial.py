"""The aerial scene family: vehicles, boats, ships, planes and storage tanks seen from above.

A scene is drawn from one generator seeded like CLEVR's (`sampling.scene_seed`): a camera looking
straight down (north up; with `max_tilt_deg` an off-nadir tilt up to that angle, its direction
free, recorded), one sun, a procedural ground (`ground.sample_layout`) and the objects. World
units are metres. The ground sample distance (`gsd`, metres per pixel at the image centre) either
is given (physical mode: each object's longest side is drawn from its class's `size_m` range, so
its rel_scale follows) or derives from the image's scale range (scale mode, as in CLEVR: each
object is sized so that its projected box hits a target rel_scale; the gsd is the one at which the
vocabulary's typical object has the range's mid scale, and an object's size in metres is recorded
as its `size`, however far that is from its class's range).

Placement is physical: an object stands on a cover its class allows (`on`: cover -> weight; the
weights prefer roads and lots for vehicles, water for boats and ships), all of its footprint on
such cover; footprints keep `gap_px` apart and never intersect; on a road a vehicle follows the
road, in a lot it parks across the lot's long side; elsewhere its heading is free. Every heading is
recorded as the object's `rotation` (degrees, counter-clockwise from east).

With a user's ground image (`config.ground`, `clevr_ds.ground_image`) the ground is a crop of it
drawn where the procedural layout would be, and the image knows no covers: every class stands
anywhere (cover "any", weight 1, free heading), footprints still apart. Without one, nothing
here draws or weighs differently from before ground images existed.
"""

from __future__ import annotations

import math

import numpy as np

from . import ground, ground_image
from .camera import Camera
from .sampling import SceneConfig, cannot_place, projected_box, scene_record, scene_seed, solve_size
from .scales import ScaleRange, range_for_image
from .shapes import lift, unit_mesh

FOCAL_MM = 80.0
SUN_ELEVATION_DEG = (35.0, 75.0)
SUN_STRENGTH = 4.0
SUN_ANGLE_DEG = 1.0
HEADING_JITTER_DEG = 3.0
COVER_GRID = 24  # points per image side at which the covers an image offers are counted
GROUND_MARGIN = 1.05  # the ground reaches this much beyond what the camera sees
MAX_TILT_DEG = 45.0
ANY = len(ground.COVERS)  # the one cover of a user's ground image: every class stands anywhere on it
COVER_NAMES = (*ground.COVERS, "any")


def reference_length(vocab) -> float:
    """The vocabulary's typical object length: the geometric mean of its classes' mid sizes (metres)."""
    mids = [math.sqrt(p["size_m"][0] * p["size_m"][1]) for p in vocab.shapes.values()]
    return math.exp(sum(math.log(m) for m in mids) / len(mids))


def physical_scales(vocab, gsd: float, side: int) -> ScaleRange:
    """The rel_scale range objects of physical size take at `gsd`: a box of a rotated object spans
    1/sqrt(2) to sqrt(2) times its longest side (capped to 1)."""
    lo = min(p["size_m"][0] for p in vocab.shapes.values()) / math.sqrt(2)
    hi = max(p["size_m"][1] for p in vocab.shapes.values()) * math.sqrt(2)
    return ScaleRange(lo / (gsd * side), min(1.0, hi / (gsd * side)))


def image_gsd(config: SceneConfig, scale_range: ScaleRange) -> float:
    """The given gsd, or the one at which the vocabulary's typical object has the range's (geometric) mid scale."""
    if config.gsd is not None:
        return config.gsd
    return reference_length(config.vocabulary) / (math.sqrt(scale_range.lo * scale_range.hi) * max(config.width, config.height))


def sample_camera(rng: np.random.Generator, config: SceneConfig, gsd: float) -> tuple[Camera, float]:
    """A camera at the distance where one pixel at the image centre spans `gsd` metres; (camera, tilt)."""
    fx = FOCAL_MM / 32.0 * max(config.width, config.height)
    distance = gsd * fx
    tilt = float(rng.uniform(0.0, config.max_tilt_deg)) if config.max_tilt_deg > 0 else 0.0
    azimuth = float(rng.uniform(0.0, 2 * math.pi))
    t = math.radians(tilt)
    location = [distance * math.sin(t) * math.cos(azimuth), distance * math.sin(t) * math.sin(azimuth), distance * math.cos(t)]
    return Camera.look_at(config.width, config.height, FOCAL_MM, location, [0.0, 0.0, 0.0], up=(0.0, 1.0, 0.0)), tilt


def seen_extent(camera: Camera) -> float:
    """How far from the origin, along x or y, the ground the camera sees reaches (its image corners' rays)."""
    corners = [camera.ground_point(x, y) for x in (0, camera.width) for y in (0, camera.height)]
    return float(max(np.abs(c[:2]).max() for c in corners))


def sample_sun(rng: np.random.Generator) -> list[dict]:
    az, el = rng.uniform(0.0, 2 * math.pi), math.radians(rng.uniform(*SUN_ELEVATION_DEG))
    direction = [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
    return [{"name": "sun", "type": "sun", "direction": direction, "strength": SUN_STRENGTH, "angle_deg": SUN_ANGLE_DEG}]


def directions(camera: Camera) -> dict[str, list[float]]:
    """CLEVR's direction vectors for a camera looking down: behind = the image's up on the ground."""
    axes = camera.axes_world()
    up = -np.r_[axes["down"][:2], 0.0]
    up /= np.linalg.norm(up)
    right = np.r_[axes["right"][:2], 0.0]
    right /= np.linalg.norm(right)
    vecs = {"behind": up, "front": -up, "left": -right, "right": right, "above": np.array([0.0, 0.0, 1.0]), "below": np.array([0.0, 0.0, -1.0])}
    return {k: v.tolist() for k, v in vecs.items()}


def footprint(unit_vertices: np.ndarray, size: float, rotation: float, xy) -> np.ndarray:
    """The 4 ground corners of an object's oriented footprint (metres), counter-clockwise."""
    lo, hi = unit_vertices[:, :2].min(0) * size, unit_vertices[:, :2].max(0) * size
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    a = math.radians(rotation)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return corners @ rot.T + np.asarray(xy, dtype=float)


def footprints_apart(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Whether two convex footprints are at least `gap` apart along one of their edge normals (separating axes)."""
    for poly in (a, b):
        edges = np.roll(poly, -1, 0) - poly
        normals = np.stack([edges[:, 1], -edges[:, 0]], 1) / np.linalg.norm(edges, axis=1)[:, None]
        pa, pb = a @ normals.T, b @ normals.T
        if np.any((pa.min(0) >= pb.max(0) + gap) | (pb.min(0) >= pa.max(0) + gap)):
            return True
    return False


def _heading(rng: np.random.Generator, layout: dict, cover: int, xy: np.ndarray) -> float:
    """A road's direction on a road, across the lot's long side in a lot (either way round), else free."""
    if cover == ground.ROAD:
        base = next(road["angle_deg"] for road in layout["roads"] if ground.on_road(road, xy))
    elif cover == ground.LOT:
        base = next(lot["angle_deg"] + 90.0 for lot in layout["lots"] if ground.in_lot(lot, xy))
    else:
        return float(rng.uniform(0.0, 360.0))
    return float((base + 180.0 * rng.integers(2) + rng.normal(0.0, HEADING_JITTER_DEG)) % 360.0)


def _covers_at(layout: dict, points: np.ndarray) -> np.ndarray:
    """The cover index (COVER_NAMES) at ground points (N, 2): ANY everywhere on a user's image."""
    if layout["kind"] == "image":
        return np.full(len(points), ANY)
    return ground.cover_at(layout, points)


def _offered_covers(camera: Camera, layout: dict) -> set[int]:
    """The covers seen at a grid of points over the image."""
    if layout["kind"] == "image":
        return {ANY}
    xs = (np.arange(COVER_GRID) + 0.5) / COVER_GRID
    points = [camera.ground_point(u * camera.width, v * camera.height) for u in xs for v in xs]
    return set(ground.cover_at(layout, np.array([p[:2] for p in points if p is not None])).tolist())


def _weights(params: dict) -> np.ndarray:
    """A class's weight per cover of COVER_NAMES, its best cover 1; ANY (a user's image) 1 for every class."""
    w = np.zeros(len(COVER_NAMES))
    for name, weight in params["on"].items():
        w[ground.COVERS.index(name)] = weight
    w[:ANY] /= w[:ANY].max()
    w[ANY] = 1.0
    return w


def _place_objects(rng, config: SceneConfig, camera: Camera, layout: dict, scale_range: ScaleRange, gsd: float, meshes) -> list[dict] | None:
    vocab = config.vocabulary
    offered = _offered_covers(camera, layout)
    weights = {s: _weights(p) for s, p in vocab.shapes.items()}
    eligible = [s for s in vocab.shapes if any(weights[s][c] > 0 for c in offered)]
    if not eligible:
        return None
    n = int(rng.integers(config.objects[0], config.objects[1] + 1))
    side, margin = max(config.width, config.height), config.gap_px
    placed: list[dict] = []
    for _ in range(n):
        shape = eligible[int(rng.integers(len(eligible)))]
        params, w = vocab.shapes[shape], weights[shape]
        colors, materials = vocab.colors_of(shape), vocab.materials_of(shape)
        color, material = colors[int(rng.integers(len(colors)))], materials[int(rng.integers(len(materials)))]
        target = scale_range.sample(rng) if config.gsd is None else None
        size_m = float(math.exp(rng.uniform(*np.log(params["size_m"])))) if config.gsd is not None else None
        for _attempt in range(config.max_object_attempts):
            px, py = rng.uniform(margin, config.width - margin), rng.uniform(margin, config.height - margin)
            point = camera.ground_point(px, py)
            if point is None:
                continue
            xy = point[:2]
            cover = int(_covers_at(layout, xy[None])[0])
            if rng.random() >= w[cover]:
                continue
            rotation = _heading(rng, layout, cover, xy)
            if target is not None:
                size, box = solve_size(camera, meshes[shape], rotation, xy, target * side)
            else:
                size, box = size_m, projected_box(camera, meshes[shape], size_m, rotation, xy)
            inside = box[0] >= margin and box[1] >= margin and box[2] <= config.width - margin and box[3] <= config.height - margin
            if not inside:
                continue
            corners = footprint(meshes[shape], size, rotation, xy)
            if np.any(w[_covers_at(layout, corners)] == 0):
                continue
            if all(footprints_apart(corners, o["footprint"], config.gap_px * gsd) for o in placed):
                center = [float(xy[0]), float(xy[1]), size * lift(meshes[shape])]
                placed.append({
                    "shape": shape, "color": color, "material": material, "class": vocab.class_of(color, shape),
                    "size": float(size), "rotation": rotation, "3d_coords": center,
                    "pixel_coords": camera.project([center])[0].tolist(),
                    "target_scale": float(target if target is not None else max(box[2] - box[0], box[3] - box[1]) / side),
                    "projected_bbox": [float(v) for v in box], "cover": COVER_NAMES[cover], "footprint": corners,
                })  # fmt: skip
                break
        else:
            return None
    for o in placed:
        o["footprint"] = o["footprint"].tolist()
    return placed


def sample_scene(config: SceneConfig, index: int) -> dict:
    """Sample aerial scene `index` of the split: the scene JSON minus what only rendering can measure."""
    seed = scene_seed(config.seed, config.split, index)
    rng = np.random.default_rng(seed)
    scale_range = range_for_image(list(config.scales), index)
    gsd = image_gsd(config, scale_range)
    meshes = {name: unit_mesh(params)[0] for name, params in config.vocabulary.shapes.items()}
    for _ in range(config.max_scene_attempts):
        camera, tilt = sample_camera(rng, config, gsd)
        lights = sample_sun(rng)
        half_extent = GROUND_MARGIN * seen_extent(camera)
        if config.ground is None:
            layout = ground.sample_layout(rng, half_extent, gsd)
        else:
            layout = ground_image.sample_crop(rng, config.ground, half_extent, gsd)
        objects = _place_objects(rng, config, camera, layout, scale_range, gsd, meshes)
        if objects is not None:
            break
    else:
        raise cannot_place(config, index, scale_range, "aerial objects")
    return scene_record(config, index, seed, scale_range, camera, lights, directions(camera), objects,
                        family="aerial", gsd=gsd, tilt_deg=tilt, ground=layout)
