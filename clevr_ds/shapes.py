"""Object meshes as plain vertex/face arrays, generated from the vocabulary's shape parameters.

The renderer builds exactly these meshes in Blender, so the sampler's projections of their
vertices give the true 2D extent of what is rendered. Every mesh is centred at the origin with a
longest side of 1: CLEVR's span [-0.5, 0.5] on each axis (side, or diameter and height); the
aerial family's (`aerial_meshes`) are longest along +x, their heading.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from . import aerial_meshes

Mesh = tuple[np.ndarray, list[tuple[int, ...]]]


def box(_params: Mapping) -> Mesh:
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return v, faces


def uv_sphere(params: Mapping) -> Mesh:
    seg, rings = int(params.get("segments", 48)), int(params.get("rings", 24))
    theta = np.pi * np.arange(1, rings) / rings  # polar angle of the inner rings
    phi = 2 * np.pi * np.arange(seg) / seg
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring_pts = 0.5 * np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    top, bottom = len(ring_pts), len(ring_pts) + 1
    v = np.concatenate([ring_pts, [[0, 0, 0.5], [0, 0, -0.5]]])
    idx = lambda r, s: r * seg + s % seg  # noqa: E731
    faces = [(top, idx(0, s + 1), idx(0, s)) for s in range(seg)]
    faces += [(idx(r, s), idx(r, s + 1), idx(r + 1, s + 1), idx(r + 1, s)) for r in range(rings - 2) for s in range(seg)]
    faces += [(bottom, idx(rings - 2, s), idx(rings - 2, s + 1)) for s in range(seg)]
    return v, faces


def cylinder(params: Mapping) -> Mesh:
    n = int(params.get("vertices", 64))
    phi = 2 * np.pi * np.arange(n) / n
    rim = 0.5 * np.stack([np.cos(phi), np.sin(phi)], 1)
    v = np.concatenate([np.c_[rim, np.full(n, 0.5)], np.c_[rim, np.full(n, -0.5)]])
    faces = [tuple(range(n)), tuple(range(2 * n - 1, n - 1, -1))]
    faces += [(s, n + s, n + (s + 1) % n, (s + 1) % n) for s in range(n)]
    return v, faces


MESH_BUILDERS: dict[str, Callable[[Mapping], Mesh]] = {"box": box, "uv_sphere": uv_sphere, "cylinder": cylinder}


def unit_mesh(shape_params: Mapping) -> Mesh:
    vertices, faces, _ = mesh_with_parts(shape_params)
    return vertices, faces


def mesh_with_parts(shape_params: Mapping) -> tuple[np.ndarray, list[tuple[int, ...]], list[int]]:
    """(vertices, faces, part of each face): a CLEVR shape is one part, the body (`aerial_meshes.PARTS`); a
    user's model its hull's vertices alone."""
    kind = shape_params.get("mesh")
    if kind == "asset":  # a user's model (clevr_ds.assets): only its convex hull is known outside Blender
        return np.asarray(shape_params["hull"], dtype=float), [], []
    if kind in aerial_meshes.BUILDERS:
        return aerial_meshes.part_mesh(shape_params)
    if kind not in MESH_BUILDERS:
        raise ValueError(f"unknown mesh type {kind!r}; known: {', '.join([*MESH_BUILDERS, *aerial_meshes.BUILDERS])}")
    vertices, faces = MESH_BUILDERS[kind](shape_params)
    return vertices, faces, [0] * len(faces)


def lift(unit_vertices: np.ndarray) -> float:
    """How far a unit mesh's origin sits above the ground when it rests on it, per unit of size."""
    return float(-unit_vertices[:, 2].min())


def placed_vertices(unit_vertices: np.ndarray, size: float, rotation_deg: float, center) -> np.ndarray:
    """Scale a unit mesh to `size`, rotate it about z by `rotation_deg` and move it to `center`."""
    a = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return (unit_vertices * size) @ rot.T + np.asarray(center, dtype=float)


def footprint_radius(unit_vertices: np.ndarray, size: float) -> float:
    """Radius of the object's footprint on the ground (max horizontal distance from its axis)."""
    return float(np.max(np.linalg.norm(unit_vertices[:, :2], axis=1)) * size)
