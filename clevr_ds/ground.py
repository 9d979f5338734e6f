"""Procedural ground of aerial scenes: a land-cover layout as data, its cover at any point, its texture.

A layout is drawn from the scene's generator and stored in the scene JSON: a grass/soil field (a
value-noise seed), optional water (a meandering river or a coast), 1-3 straight roads and 0-3
parking lots beside them, all in world metres around the origin. `cover_at` tells which of COVERS
lies at ground points (water over road over lot over soil/grass); the sampler places objects
with it and the renderer paints `texture` from the same function, so what an object stands on
in the image is what the sampler chose.
"""

from __future__ import annotations

import numpy as np

COVERS = ("grass", "soil", "lot", "road", "water")
GRASS, SOIL, LOT, ROAD, WATER = range(len(COVERS))
FIELD_CELLS = 6  # value-noise lattice cells across the layout
SOIL_SHARE = 0.35
WATER_CHANCE = 0.6
# Colours (linear RGB) of each cover, and the amplitude of their per-texel noise.
COVER_RGB = np.array([[0.07, 0.13, 0.04], [0.22, 0.15, 0.08], [0.16, 0.16, 0.16], [0.06, 0.06, 0.065], [0.02, 0.05, 0.06]])
COVER_NOISE = np.array([0.25, 0.2, 0.06, 0.08, 0.05])
MARKING_RGB = np.array([0.7, 0.7, 0.68])


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_layout(rng: np.random.Generator, half_extent: float, gsd: float) -> dict:
    """A land-cover layout covering [-half_extent, half_extent]^2 metres, roads and lots sized in metres
    (wider than 3 pixels at `gsd`, so they show at any resolution)."""
    r = half_extent
    layout = {"kind": "procedural", "half_extent_m": r, "field_seed": int(rng.integers(2**31)), "water": None}
    if rng.random() < WATER_CHANCE:
        layout["water"] = {
            "kind": "river" if rng.random() < 0.5 else "coast",
            "angle_deg": _uniform(rng, 0, 180), "offset_m": _uniform(rng, -0.4 * r, 0.4 * r),
            "width_m": _uniform(rng, 0.15 * r, 0.5 * r), "amp_m": _uniform(rng, 0.0, 0.15 * r),
            "wavelength_m": _uniform(rng, 1.0 * r, 3.0 * r), "phase": _uniform(rng, 0, 2 * np.pi),
        }  # fmt: skip
    road_width = max(7.0, 3 * gsd)
    layout["roads"] = [
        {"angle_deg": _uniform(rng, 0, 180), "offset_m": _uniform(rng, -0.6 * r, 0.6 * r),
         "width_m": road_width * _uniform(rng, 1.0, 2.0)}
        for _ in range(int(rng.integers(1, 4)))
    ]  # fmt: skip
    layout["lots"] = []
    for _ in range(int(rng.integers(0, 4))):
        road = layout["roads"][int(rng.integers(len(layout["roads"])))]
        a = np.deg2rad(road["angle_deg"])
        along, across = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        depth, length = _uniform(rng, 0.1 * r, 0.35 * r), _uniform(rng, 0.15 * r, 0.6 * r)
        side = 1 if rng.random() < 0.5 else -1
        centre = across * road["offset_m"] + along * _uniform(rng, -0.6 * r, 0.6 * r)
        centre = centre + side * across * (road["width_m"] / 2 + depth / 2)
        layout["lots"].append({"center_m": centre.tolist(), "size_m": [length, depth], "angle_deg": road["angle_deg"]})
    return layout


Points = np.ndarray | tuple[np.ndarray, np.ndarray]


def _split(points) -> tuple[np.ndarray, np.ndarray]:
    """Ground points as x and y: from an (..., 2) array, or an (x, y) pair of broadcastable arrays (a grid
    as a row of x and a column of y, never materialised as points)."""
    if isinstance(points, tuple):
        return points
    points = np.asarray(points, dtype=float)
    return points[..., 0], points[..., 1]


def along_across(points: Points, angle_deg: float, origin=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of `points` along and across the direction `angle_deg` (degrees from east), from `origin`."""
    x, y = _split(points)
    x, y = x - origin[0], y - origin[1]
    a = np.deg2rad(angle_deg)
    return x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)


def in_lot(lot: dict, points: Points) -> np.ndarray:
    """Whether `points` lie in `lot`."""
    along, across = along_across(points, lot["angle_deg"], lot["center_m"])
    return (np.abs(along) < lot["size_m"][0] / 2) & (np.abs(across) < lot["size_m"][1] / 2)


def on_road(road: dict, points: Points) -> np.ndarray:
    """Whether `points` lie on `road`."""
    return np.abs(along_across(points, road["angle_deg"])[1] - road["offset_m"]) < road["width_m"] / 2


def _water(water: dict, points: Points) -> np.ndarray:
    along, across = along_across(points, water["angle_deg"])
    d = across - water["offset_m"] - water["amp_m"] * np.sin(2 * np.pi * along / water["wavelength_m"] + water["phase"])
    return np.abs(d) < water["width_m"] / 2 if water["kind"] == "river" else d > 0


def _weights(u: np.ndarray, cells: int) -> np.ndarray:
    """(N, cells + 1) interpolation weights of positions u in [0, cells]: smoothstep between lattice points."""
    i = np.minimum(u.astype(int), cells - 1)
    f = u - i
    f = f * f * (3 - 2 * f)
    w = np.zeros((u.size, cells + 1))
    rows = np.arange(u.size)
    w[rows, i] = 1 - f
    w[rows, i + 1] = f
    return w


def _lattice(seed: int, cells: int) -> np.ndarray:
    return np.random.default_rng(seed).random((cells + 1, cells + 1))


def _positions(coords: np.ndarray, half_extent: float, cells: int) -> np.ndarray:
    return np.clip((coords + half_extent) / (2 * half_extent), 0, 1) * cells


def field_noise(seed: int, xy: np.ndarray, half_extent: float, cells: int = FIELD_CELLS) -> np.ndarray:
    """Smooth value noise in [0, 1] at points `xy` (..., 2): a seeded lattice over the layout, interpolated."""
    u = _positions(xy.reshape(-1, 2), half_extent, cells).T
    wx, wy = _weights(u[0], cells), _weights(u[1], cells)
    return np.einsum("ni,ni->n", wx @ _lattice(seed, cells), wy).reshape(xy.shape[:-1])


def field_noise_grid(seed: int, xs: np.ndarray, ys: np.ndarray, half_extent: float, cells: int = FIELD_CELLS) -> np.ndarray:
    """`field_noise` on the grid of rows at `ys` and columns at `xs`, as two small matrix products."""
    wx, wy = _weights(_positions(xs, half_extent, cells), cells), _weights(_positions(ys, half_extent, cells), cells)
    return wy @ _lattice(seed, cells).T @ wx.T


def cover_at(layout: dict, points: Points, field: np.ndarray | None = None) -> np.ndarray:
    """The cover index (COVERS) at ground `points` in metres (`field`: their field noise, if known)."""
    x, y = _split(points)
    if field is None:
        field = field_noise(layout["field_seed"], np.stack(np.broadcast_arrays(x, y), -1), layout["half_extent_m"])
    out = np.where(field < SOIL_SHARE, SOIL, GRASS)
    for lot in layout["lots"]:
        out[in_lot(lot, (x, y))] = LOT
    for road in layout["roads"]:
        out[on_road(road, (x, y))] = ROAD
    if layout["water"] is not None:
        out[_water(layout["water"], (x, y))] = WATER
    return out


def _markings(layout: dict, grid: tuple[np.ndarray, np.ndarray], gsd: float) -> np.ndarray:
    """Dashed centre lines on roads and stall lines in lots, each at least a pixel wide."""
    line = max(0.15, gsd)
    marked = np.zeros(np.broadcast_shapes(grid[0].shape, grid[1].shape), dtype=bool)
    for road in layout["roads"]:
        along, across = along_across(grid, road["angle_deg"])
        marked |= (np.abs(across - road["offset_m"]) < line / 2) & (np.mod(along, 12.0) < 6.0)
    for lot in layout["lots"]:
        along, across = along_across(grid, lot["angle_deg"], lot["center_m"])
        stall = (np.mod(along, 2.6) < line) & (np.abs(np.abs(across) - lot["size_m"][1] / 4) < 2.5)
        marked |= in_lot(lot, grid) & stall
    return marked


def texture(layout: dict, pixels: int, gsd: float) -> np.ndarray:
    """The layout painted as a (pixels, pixels, 3) linear-RGB float32 image, row 0 at y = +half_extent (north up)."""
    r, seed = layout["half_extent_m"], layout["field_seed"]
    xs = (np.arange(pixels) + 0.5) / pixels * 2 * r - r
    ys = xs[::-1]
    grid = (xs[None, :], ys[:, None])
    cover = cover_at(layout, grid, field_noise_grid(seed, xs, ys, r))
    grain = np.random.default_rng(seed + 1).standard_normal((pixels, pixels), dtype=np.float32)
    broad = field_noise_grid(seed + 2, xs, ys, r, 4 * FIELD_CELLS).astype(np.float32) - 0.5
    shade = 1 + COVER_NOISE[cover].astype(np.float32) * (0.5 * grain + 1.5 * broad)
    rgb = COVER_RGB.astype(np.float32)[cover] * shade[..., None]
    rgb[_markings(layout, grid, gsd) & np.isin(cover, (ROAD, LOT))] = MARKING_RGB
    return np.clip(rgb, 0, 1)
