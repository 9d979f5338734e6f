"""Oriented boxes of an object: the minimum-area rectangle of its visible mask (`mask_obb`) and the box
of its projected model along its projected heading (`heading_obb`). Pure numpy.

Coordinates are pixel-corner coordinates, as in `clevr_ds.camera`: pixel (r, c) covers [c, c+1) x
[r, r+1). A box is 4 corners [x, y], rounded to DECIMALS places (1e-3 px), clockwise as seen on the
image (y down), starting from the corner with the smallest x + y (ties: the smaller y): DOTA's order.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .camera import Camera
from .shapes import placed_vertices, unit_mesh
from .vocab import Vocabulary

DECIMALS = 3
TOLERANCE = 0.01  # px: a stored box agrees with a recomputed one, a box contains a point


def ordered(corners) -> list[list[float]]:
    """4 corners of a rectangle, rounded to DECIMALS, in the module's order (clockwise on the image from
    the corner of smallest x + y)."""
    c = np.round(np.asarray(corners, dtype=float), DECIMALS) + 0.0  # + 0.0: no -0.0
    x, y = c[:, 0], c[:, 1]
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:  # counter-clockwise on the image (y down)
        c = c[::-1]
    start = np.lexsort((c[:, 1], c[:, 0] + c[:, 1]))[0]
    return np.roll(c, -start, axis=0).tolist()


def _rectangle(points: np.ndarray, u: np.ndarray) -> list[list[float]]:
    """The smallest rectangle containing `points` with sides along unit vector u and its normal, in the module's order."""
    v = np.array([-u[1], u[0]])
    a, b = points @ u, points @ v
    return ordered([a0 * u + b0 * v for a0, b0 in ((a.min(), b.min()), (a.max(), b.min()), (a.max(), b.max()), (a.min(), b.max()))])


def mask_corners(mask: np.ndarray) -> np.ndarray:
    """Corners [x, y] of the first and last set pixel of each row of `mask`: their convex hull is that of
    every set pixel's square."""
    rows = np.flatnonzero(mask.any(1))
    sub = mask[rows]
    first = sub.argmax(1)
    end = sub.shape[1] - sub[:, ::-1].argmax(1)  # right edge of the last set pixel
    return np.stack([np.concatenate([first, first, end, end]), np.concatenate([rows, rows + 1, rows, rows + 1])], 1)


def _turns_left(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> bool:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]) > 0


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of integer points (N, 2), at least 3 of them not on one line, without
    collinear vertices (Andrew's monotone chain, in exact integer arithmetic)."""

    def chain(seq: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in seq:
            while len(out) >= 2 and not _turns_left(out[-2], out[-1], p):
                out.pop()
            out.append(p)
        return out

    pts = [(int(x), int(y)) for x, y in np.unique(np.asarray(points), axis=0)]
    return np.asarray(chain(pts)[:-1] + chain(pts[::-1])[:-1], dtype=float)


def mask_obb(mask: np.ndarray) -> list[list[float]] | None:
    """The minimum-area rectangle containing every set pixel's square of a boolean (H, W) mask; None when
    it is empty. One side of it lies along an edge of the convex hull (Freeman and Shapira), so every
    hull edge's direction is tried at once (rotating calipers, vectorised)."""
    if not mask.any():
        return None
    hull = _convex_hull(mask_corners(mask))  # a non-empty mask: at least one pixel's 4 corners
    edges = np.roll(hull, -1, axis=0) - hull
    u = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    v = np.stack([-u[:, 1], u[:, 0]], 1)
    a, b = u @ hull.T, v @ hull.T
    best = int(np.argmin((a.max(1) - a.min(1)) * (b.max(1) - b.min(1))))
    return _rectangle(hull, u[best])


def heading_obb(camera: Camera, world_vertices: np.ndarray, rotation_deg: float, centre) -> list[list[float]]:
    """The smallest rectangle containing the projected vertices whose sides run along, and across, the
    image direction of the object's heading: the projection's derivative, at the object's `centre`, along
    the world direction (cos r, sin r, 0)."""
    r = np.deg2rad(rotation_deg)
    point = camera.to_camera([centre])[0]
    direction = camera.world_to_camera[:3, :3] @ np.array([np.cos(r), np.sin(r), 0.0])
    d = direction[:2] * point[2] - point[:2] * direction[2]  # d(x, y)/ds of the projection, up to fx / z^2 > 0
    return _rectangle(camera.project(world_vertices)[:, :2], d / np.linalg.norm(d))


class UnitMeshes(dict):
    """Shape name -> unit mesh vertices of a vocabulary, each built on first use."""

    def __init__(self, vocab: Vocabulary):
        super().__init__()
        self.vocab = vocab

    def __missing__(self, shape: str) -> np.ndarray:
        self[shape] = unit_mesh(self.vocab.shapes[shape])[0]
        return self[shape]


def scene_camera(scene: dict) -> Camera:
    return Camera.from_dict(scene["camera"], scene["width"], scene["height"])


def object_heading_obb(obj: dict, camera: Camera, meshes: Mapping[str, np.ndarray]) -> list[list[float]]:
    """`heading_obb` of a scene object, its world vertices placed from its unit mesh, size, rotation and centre."""
    vertices = placed_vertices(meshes[obj["shape"]], obj["size"], obj["rotation"], obj["3d_coords"])
    return heading_obb(camera, vertices, obj["rotation"], obj["3d_coords"])


def object_obbs(scene: dict, masks: Iterable[np.ndarray], meshes: Mapping[str, np.ndarray]) -> list[dict]:
    """{"obb": mask_obb of its mask, "heading_obb": its heading box} for each object of `scene`."""
    camera = scene_camera(scene)
    return [{"obb": mask_obb(mask), "heading_obb": object_heading_obb(obj, camera, meshes)}
            for obj, mask in zip(scene["objects"], masks)]  # fmt: skip


def agrees(box, expected) -> bool:
    """Two boxes (or None) are the same within TOLERANCE px, corner by corner."""
    if box is None or expected is None:
        return box is expected
    return bool(np.allclose(np.asarray(box, dtype=float), np.asarray(expected, dtype=float), rtol=0, atol=TOLERANCE))


def contains(box, mask: np.ndarray) -> bool:
    """Every set pixel's square of `mask` lies in the convex quadrilateral `box` (module order), within TOLERANCE px."""
    c = np.asarray(box, dtype=float)
    points = mask_corners(mask).astype(float)
    for a, b in zip(c, np.roll(c, -1, axis=0)):
        edge = b - a
        inward = edge[0] * (points[:, 1] - a[1]) - edge[1] * (points[:, 0] - a[0])  # > 0 inside (clockwise, y down)
        if (inward < -TOLERANCE * np.linalg.norm(edge)).any():
            return False
    return True
