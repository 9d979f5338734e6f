"""Procedural meshes of the aerial family's classes, built from boxes, tapered boxes, cylinders and hulls.

Every builder takes the class's shape parameters (its `proportions` [length, width, height] in
metres, used only as ratios) and returns a `PartMesh`: vertices, faces and, per face, the part it
belongs to (`PARTS`: the body takes the object's colour, the other parts fixed materials). Like the
CLEVR shapes, a unit mesh is centred at the origin, its longest side is 1 and its length runs
along +x (its heading), so `shapes.placed_vertices` places it and `size` is its longest side in
metres. Parts may interpenetrate (no booleans): what is rendered is their union.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

PARTS = ("body", "glass", "dark", "white", "deck")


@dataclass
class PartMesh:
    vertices: list[np.ndarray]
    faces: list[tuple[int, ...]]
    parts: list[int]

    def add(self, vertices: np.ndarray, faces: list[tuple[int, ...]], part: str) -> None:
        base = sum(len(v) for v in self.vertices)
        self.vertices.append(np.asarray(vertices, dtype=float))
        self.faces += [tuple(base + i for i in f) for f in faces]
        self.parts += [PARTS.index(part)] * len(faces)

    def normalised(self) -> tuple[np.ndarray, list[tuple[int, ...]], list[int]]:
        """Vertices centred on their bounding box and scaled to a longest side of 1."""
        v = np.concatenate(self.vertices)
        lo, hi = v.min(0), v.max(0)
        return (v - (lo + hi) / 2) / float(np.max(hi - lo)), self.faces, self.parts


# Faces of 8 corners ordered x-major (x, y, z in {lo, hi}), outward winding as in shapes.box.
_BOX_FACES = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def _frustum(mesh: PartMesh, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], part: str,
             top_x: tuple[float, float] | None = None, top_y: tuple[float, float] | None = None) -> None:
    """A box from x, y, z = (lo, hi) ranges whose top face may be the smaller rectangle top_x by top_y."""
    tx, ty = top_x or x, top_y or y
    corners = [[(tx if zi else x)[xi], (ty if zi else y)[yi], z[zi]] for xi in (0, 1) for yi in (0, 1) for zi in (0, 1)]
    mesh.add(np.array(corners), _BOX_FACES, part)


def _cylinder(mesh: PartMesh, centre: tuple[float, float], radius: float, z: tuple[float, float], part: str,
              segments: int = 32, top_radius: float | None = None) -> None:
    """A vertical cylinder (a cone frustum with `top_radius`), capped at both ends."""
    phi = 2 * np.pi * np.arange(segments) / segments
    ring = np.stack([np.cos(phi), np.sin(phi)], 1)
    top_r = radius if top_radius is None else top_radius
    bottom = np.c_[centre + radius * ring, np.full(segments, z[0])]
    top = np.c_[centre + top_r * ring, np.full(segments, z[1])]
    n = segments
    faces = [tuple(range(n - 1, -1, -1)), tuple(range(n, 2 * n))]
    faces += [(s, (s + 1) % n, n + (s + 1) % n, n + s) for s in range(n)]
    mesh.add(np.concatenate([bottom, top]), faces, part)


def _prism(mesh: PartMesh, bottom: list, top: list, z: tuple[float, float], part: str, top_part: str | None = None) -> None:
    """A loft from the convex outline `bottom` (x, y points, counter-clockwise) at z[0] to `top` at z[1]."""
    n = len(bottom)
    v = [(x, y, z[0]) for x, y in bottom] + [(x, y, z[1]) for x, y in top]
    sides = [(s, (s + 1) % n, n + (s + 1) % n, n + s) for s in range(n)]
    mesh.add(np.array(v), [tuple(range(n - 1, -1, -1))] + sides, part)
    mesh.add(np.array(v[n:]), [tuple(range(n))], top_part or part)


def _hull(mesh: PartMesh, length: float, width: float, z: tuple[float, float], bow: float, part: str, deck: str) -> None:
    """A boat hull whose front `bow` share tapers to a point, narrower at the keel than at the deck."""
    x0, x1, xb = -length / 2, length / 2, length / 2 - bow * length
    outline = lambda half: [(x0, -half), (xb, -half), (x1, 0.0), (xb, half), (x0, half)]  # noqa: E731
    _prism(mesh, outline(0.3 * width), outline(width / 2), z, part, deck)


def car(p: Mapping) -> PartMesh:
    L, W, H = p["proportions"]
    m = PartMesh([], [], [])
    _frustum(m, (-L / 2, L / 2), (-W / 2, W / 2), (0.15 * H, 0.6 * H), "body")
    _frustum(m, (-0.3 * L, 0.22 * L), (-0.45 * W, 0.45 * W), (0.6 * H, H), "glass", (-0.22 * L, 0.08 * L), (-0.4 * W, 0.4 * W))
    _frustum(m, (-0.21 * L, 0.07 * L), (-0.39 * W, 0.39 * W), (0.98 * H, 1.01 * H), "body")
    for x in (-0.32 * L, 0.32 * L):
        for y in (-0.42 * W, 0.42 * W):
            _frustum(m, (x - 0.09 * L, x + 0.09 * L), (y - 0.08 * W, y + 0.08 * W), (0.0, 0.3 * H), "dark")
    return m


def van(p: Mapping) -> PartMesh:
    L, W, H = p["proportions"]
    m = PartMesh([], [], [])
    _frustum(m, (-L / 2, 0.3 * L), (-W / 2, W / 2), (0.12 * H, H), "body")
    _frustum(m, (0.3 * L, L / 2), (-W / 2, W / 2), (0.12 * H, 0.55 * H), "body")
    _frustum(m, (0.2 * L, 0.4 * L), (-0.47 * W, 0.47 * W), (0.5 * H, 0.95 * H), "glass", (0.2 * L, 0.3 * L))
    for x in (-0.33 * L, 0.33 * L):
        _frustum(m, (x - 0.07 * L, x + 0.07 * L), (-0.48 * W, 0.48 * W), (0.0, 0.25 * H), "dark")
    return m


def truck(p: Mapping) -> PartMesh:
    L, W, H = p["proportions"]
    m = PartMesh([], [], [])
    _frustum(m, (0.3 * L, L / 2), (-W / 2, W / 2), (0.2 * H, 0.8 * H), "body")
    _frustum(m, (0.42 * L, 0.5 * L), (-0.47 * W, 0.47 * W), (0.45 * H, 0.78 * H), "glass")
    _frustum(m, (-L / 2, 0.28 * L), (-W / 2, W / 2), (0.25 * H, H), "white")
    _frustum(m, (-0.45 * L, 0.45 * L), (-0.3 * W, 0.3 * W), (0.1 * H, 0.25 * H), "dark")
    return m


def bus(p: Mapping) -> PartMesh:
    L, W, H = p["proportions"]
    m = PartMesh([], [], [])
    _frustum(m, (-L / 2, L / 2), (-W / 2, W / 2), (0.12 * H, 0.95 * H), "body")
    _frustum(m, (-0.48 * L, 0.49 * L), (-0.51 * W, 0.51 * W), (0.5 * H, 0.85 * H), "glass")
    for x in (-0.3 * L, 0.1 * L):
        _frustum(m, (x, x + 0.12 * L), (-0.3 * W, 0.3 * W), (0.95 * H, H), "white")
    return m


def small_boat(p: Mapping) -> PartMesh:
    L, W, H = p["proportions"]
    m = PartMesh([], [], [])
    _hull(m, L, W, (0.0, 0.6 * H), 0.3, "body", "white")
    _frustum(m, (-0.2 * L, 0.05 * L), (-0.3 * W, 0.3 * W), (0.6 * H, H), "glass", (-0.2 * L, -0.02 * L))
    return m


def ship(p: Mapping) -> PartMesh:
    L, W, H = p["proportions"]
    m = PartMesh([], [], [])
    _hull(m, L, W, (0.0, 0.45 * H), 0.15, "body", "deck")
    _frustum(m, (-0.45 * L, -0.3 * L), (-0.4 * W, 0.4 * W), (0.45 * H, 0.85 * H), "white")
    _frustum(m, (-0.42 * L, -0.33 * L), (-0.3 * W, 0.3 * W), (0.85 * H, H), "glass")
    _cylinder(m, (-0.38 * L, 0.0), 0.06 * W, (0.85 * H, 0.98 * H), "dark", 12)
    for i in range(4):
        x = -0.22 * L + i * 0.14 * L
        _frustum(m, (x, x + 0.11 * L), (-0.35 * W, 0.35 * W), (0.45 * H, 0.6 * H), "body")
    return m


def plane(p: Mapping) -> PartMesh:
    L, span, H = p["proportions"]
    r = 0.055 * L
    m = PartMesh([], [], [])
    _frustum(m, (-0.42 * L, 0.42 * L), (-r, r), (0.35 * H, 0.35 * H + 2 * r), "body")
    _frustum(m, (0.42 * L, L / 2), (-r, r), (0.35 * H, 0.35 * H + 2 * r), "body", (0.42 * L, 0.47 * L), (-0.4 * r, 0.4 * r))
    _frustum(m, (-0.5 * L, -0.42 * L), (-r, r), (0.35 * H + r, 0.35 * H + 2 * r), "body", None, (-0.4 * r, 0.4 * r))
    for side in (1, -1):  # swept wings and tailplanes, each a convex quadrilateral
        for root, tip, half, z in (((0.12, -0.05), (-0.12, -0.2), span / 2, 0.4), ((-0.4, -0.5), (-0.47, -0.52), 0.18 * span, 0.55)):
            outline = [(root[0] * L, 0.0), (tip[0] * L, side * half), (tip[1] * L, side * half), (root[1] * L, 0.0)]
            outline = outline if side > 0 else outline[::-1]
            _prism(m, outline, outline, (z * H, (z + 0.03) * H), "white")
    _frustum(m, (-0.5 * L, -0.38 * L), (-0.01 * span, 0.01 * span), (0.4 * H, H), "body", (-0.5 * L, -0.46 * L))
    for y in (-0.18 * span, 0.18 * span):
        _cylinder(m, (0.08 * L, y), 0.025 * L, (0.22 * H, 0.4 * H), "dark", 12)
    return m


def storage_tank(p: Mapping) -> PartMesh:
    D, _, H = p["proportions"]
    m = PartMesh([], [], [])
    _cylinder(m, (0.0, 0.0), D / 2, (0.0, 0.92 * H), "body", 64)
    _cylinder(m, (0.0, 0.0), D / 2, (0.92 * H, H), "body", 64, top_radius=0.15 * D)
    _frustum(m, (0.44 * D, 0.5 * D), (-0.02 * D, 0.02 * D), (0.0, 0.9 * H), "dark")
    return m


BUILDERS: dict[str, Callable[[Mapping], PartMesh]] = {
    "car": car, "van": van, "truck": truck, "bus": bus, "small_boat": small_boat, "ship": ship, "plane": plane,
    "storage_tank": storage_tank,
}  # fmt: skip


def part_mesh(params: Mapping) -> tuple[np.ndarray, list[tuple[int, ...]], list[int]]:
    """The normalised unit mesh of an aerial class: (vertices, faces, part index per face)."""
    return BUILDERS[params["mesh"]](params).normalised()
