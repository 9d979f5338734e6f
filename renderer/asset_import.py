"""Import a user's model into Blender as one mesh: every mesh object of the file joined, its own materials kept.

`python -m renderer.asset_import DIR` measures the models of DIR/assets.json (`clevr_ds.assets`)
for the driver: per model its transform (centre, turn so the longer horizontal side runs along x,
scale to a longest side of 1) and the convex hull of its transformed vertices, as JSON on stdout.
A file that does not import, or holds no faces, is one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy
import bmesh  # importable once bpy is
import numpy as np
from mathutils import Matrix

from clevr_ds.assets import AssetError, read_manifest
from clevr_ds.vocab import Vocabulary

MIN_HULL_VERTICES = 4


def _import(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".obj":
        bpy.ops.wm.obj_import(filepath=str(path))
    elif suffix == ".ply":
        bpy.ops.wm.ply_import(filepath=str(path))
    elif suffix in (".gltf", ".glb"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:
        with bpy.data.libraries.load(str(path), link=False) as (source, target):
            target.objects = list(source.objects)
        for obj in target.objects:
            if obj is not None:
                bpy.context.scene.collection.objects.link(obj)


def import_model(path: Path, name: str, transform=None) -> bpy.types.Mesh:
    """The file's mesh objects joined into one mesh (world transforms and `transform` applied, materials
    kept); everything the import added to the scene is removed again. AssetError when it fails or has no faces."""
    before = set(bpy.data.objects)
    try:
        _import(path)
    except (RuntimeError, OSError) as e:
        raise AssetError(f"{path.name}: does not import ({str(e).strip().splitlines()[-1] if str(e).strip() else e})") from None
    added = [obj for obj in bpy.data.objects if obj not in before]
    joined, materials = bmesh.new(), []
    outer = Matrix(transform) if transform is not None else Matrix.Identity(4)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in added:
        if obj.type != "MESH" or not obj.data.polygons:
            continue
        part = bmesh.new()
        evaluated = obj.evaluated_get(depsgraph)  # with its modifiers applied
        part.from_mesh(evaluated.to_mesh())
        evaluated.to_mesh_clear()
        part.transform(outer @ obj.matrix_world)
        for face in part.faces:
            face.material_index += len(materials)
        materials += list(obj.data.materials) or [None]
        scratch = bpy.data.meshes.new("scratch")
        part.to_mesh(scratch)
        part.free()
        joined.from_mesh(scratch)
        bpy.data.meshes.remove(scratch)
    for obj in added:
        bpy.data.objects.remove(obj)
    if not joined.faces:
        joined.free()
        raise AssetError(f"{path.name}: holds no mesh with faces")
    mesh = bpy.data.meshes.new(name)
    joined.to_mesh(mesh)
    joined.free()
    for material in materials:
        mesh.materials.append(material)
    return mesh


def normalising_transform(vertices: np.ndarray) -> np.ndarray:
    """4x4: centre the bounding box, turn so the longer horizontal side runs along x, scale the longest side to 1."""
    lo, hi = vertices.min(0), vertices.max(0)
    extent = hi - lo
    centre = np.eye(4)
    centre[:3, 3] = -(lo + hi) / 2
    turn = np.eye(4)
    if extent[1] > extent[0]:
        turn[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
    return np.diag([1 / float(extent.max())] * 3 + [1.0]) @ turn @ centre


def hull(vertices: np.ndarray) -> np.ndarray:
    """The vertices of the convex hull (all of them when the hull is degenerate, e.g. a flat model)."""
    bm = bmesh.new()
    for v in vertices:
        bm.verts.new(v)
    result = bmesh.ops.convex_hull(bm, input=list(bm.verts))
    on_hull = {v for v in result["geom"] if isinstance(v, bmesh.types.BMVert)}
    points = np.array([list(v.co) for v in on_hull]) if len(on_hull) >= MIN_HULL_VERTICES else vertices
    bm.free()
    return points[np.lexsort(points.T[::-1])]  # a fixed order, whatever bmesh's


def measure(path: Path) -> dict:
    """A model's transform and hull (the driver's record of it)."""
    mesh = import_model(path, "probe")
    raw = np.empty(3 * len(mesh.vertices))
    mesh.vertices.foreach_get("co", raw)
    bpy.data.meshes.remove(mesh)
    vertices = raw.reshape(-1, 3)
    transform = normalising_transform(vertices)
    placed = vertices @ transform[:3, :3].T + transform[:3, 3]
    return {"transform": np.round(transform, 12).tolist(), "hull": np.round(hull(placed), 9).tolist()}


def main(argv: list[str]) -> int:
    try:
        folder = Path(argv[0])
        specs = read_manifest(folder, Vocabulary.of_family(argv[1]))
        bpy.ops.wm.read_factory_settings(use_empty=True)
        print(json.dumps([measure(folder / spec.file) for spec in specs]))
    except (AssetError, OSError) as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
