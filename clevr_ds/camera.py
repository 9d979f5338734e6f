"""Pinhole camera in the OpenCV convention (x right, y down, z forward), shared by the sampler
(which projects geometry to solve object sizes) and the renderer (which reproduces it in Blender).

Pixel (row r, column c) covers [c, c+1) x [r, r+1); the optical axis meets the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENSOR_WIDTH_MM = 32.0


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    focal_mm: float
    location: tuple[float, float, float]
    world_to_camera: np.ndarray  # 4x4, OpenCV convention

    @classmethod
    def look_at(cls, width, height, focal_mm, location, target, up=(0.0, 0.0, 1.0)) -> "Camera":
        """A camera at `location` looking at `target`, its image's up side towards world `up`."""
        loc = np.asarray(location, dtype=float)
        forward = np.asarray(target, dtype=float) - loc
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, list(up))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        w2c = np.eye(4)
        w2c[:3, :3] = rot
        w2c[:3, 3] = -rot @ loc
        return cls(int(width), int(height), float(focal_mm), tuple(loc.tolist()), w2c)

    @property
    def fx(self) -> float:
        """Focal length in pixels; the sensor width spans the longer image side (Blender AUTO fit)."""
        return self.focal_mm / SENSOR_WIDTH_MM * max(self.width, self.height)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.width / 2], [0.0, self.fx, self.height / 2], [0.0, 0.0, 1.0]])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=float)
        return points @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> (N, 3) array of pixel x, pixel y, depth along the optical axis."""
        cam = self.to_camera(points)
        z = cam[:, 2]
        return np.stack([self.fx * cam[:, 0] / z + self.width / 2, self.fx * cam[:, 1] / z + self.height / 2, z], 1)

    def ground_point(self, px: float, py: float) -> np.ndarray | None:
        """Where the ray through pixel position (px, py) meets the ground plane z = 0, or None."""
        ray_cam = np.array([(px - self.width / 2) / self.fx, (py - self.height / 2) / self.fx, 1.0])
        ray = self.world_to_camera[:3, :3].T @ ray_cam
        if ray[2] >= -1e-9:
            return None
        t = -self.location[2] / ray[2]
        return np.asarray(self.location) + t * ray

    def axes_world(self) -> dict[str, np.ndarray]:
        """Camera right, down and forward axes in world coordinates."""
        rot = self.world_to_camera[:3, :3]
        return {"right": rot[0], "down": rot[1], "forward": rot[2]}

    def to_dict(self) -> dict:
        return {
            "convention": "opencv (x right, y down, z forward); pixel centres at integer + 0.5",
            "K": self.K.tolist(),
            "world_to_camera": self.world_to_camera.tolist(),
            "location": list(self.location),
            "focal_mm": self.focal_mm,
            "sensor_width_mm": SENSOR_WIDTH_MM,
        }

    @classmethod
    def from_dict(cls, data: dict, width: int, height: int) -> "Camera":
        return cls(width, height, float(data["focal_mm"]), tuple(data["location"]), np.asarray(data["world_to_camera"], dtype=float))
