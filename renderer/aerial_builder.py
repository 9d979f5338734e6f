"""Build an aerial scene in Blender: a textured ground painted from the scene's land-cover layout (or cut
from the user's ground image, `clevr_ds.ground_image`: the worker adds the absolute `path` of the
split's copy to the scene's `ground`), a sun, a sky and the objects, each mesh with its parts
(`clevr_ds.aerial_meshes.PARTS`): the body in the object's colour and material, the other parts in the
fixed materials of PART_MATERIALS."""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

from clevr_ds import ground, ground_image
from clevr_ds.aerial_meshes import PARTS
from clevr_ds.shapes import mesh_with_parts
from clevr_ds.vocab import Vocabulary

from .asset_import import import_model
from .scene_builder import add_camera, add_lights, add_objects, add_world, link_object, new_mesh, principled, set_resolution

SKY_COLOR = (0.55, 0.65, 0.8)
SKY_STRENGTH = 0.35
MAX_TEXTURE_SIDE = 8192
# Parts other than the body: (linear RGB, metallic, roughness, specular).
PART_MATERIALS = {
    "glass": ((0.01, 0.015, 0.02), 0.0, 0.08, 0.9),
    "dark": ((0.015, 0.015, 0.015), 0.0, 0.7, 0.3),
    "white": ((0.75, 0.75, 0.72), 0.0, 0.5, 0.4),
    "deck": ((0.28, 0.2, 0.12), 0.0, 0.8, 0.2),
}


def _ground_image(layout: dict, gsd: float) -> bpy.types.Image:
    """The layout's texture as a float Blender image, about one texel per metre of gsd."""
    side = min(MAX_TEXTURE_SIDE, math.ceil(2 * layout["half_extent_m"] / gsd))
    if layout["kind"] == "image":
        rgb = ground_image.texture(layout, ground_image.load_pixels(layout["path"], layout["sha256"]), side)
    else:
        rgb = ground.texture(layout, side, gsd)
    rgba = np.concatenate([rgb, np.ones((side, side, 1), np.float32)], -1)[::-1]  # Blender's rows run bottom-up
    image = bpy.data.images.new("ground", side, side, float_buffer=True)
    image.pixels.foreach_set(np.ascontiguousarray(rgba).ravel())
    return image


def _add_ground(layout: dict, gsd: float) -> None:
    r = layout["half_extent_m"]
    plane = new_mesh("ground", np.array([[-r, -r, 0], [r, -r, 0], [r, r, 0], [-r, r, 0]], dtype=float), [(0, 1, 2, 3)], smooth=False)
    uv = plane.uv_layers.new(name="uv")
    uv.data.foreach_set("uv", [0, 0, 1, 0, 1, 1, 0, 1])
    material = principled("ground", (1.0, 1.0, 1.0), 0.0, 0.85, 0.2)
    nodes = material.node_tree.nodes
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = _ground_image(layout, gsd)
    tex.interpolation = "Linear"
    material.node_tree.links.new(tex.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    plane.materials.append(material)
    link_object("ground", plane)


def _part_meshes(vocab: Vocabulary) -> dict[str, bpy.types.Mesh]:
    """One mesh per shape, its faces assigned to part slots, slot 0 (the body) filled per object; a user's
    model (its file resolved by `renderer.assets.resolved`) as imported, with its own materials."""
    fixed = {part: principled(part, *spec) for part, spec in PART_MATERIALS.items()}
    meshes = {}
    for name, params in vocab.shapes.items():
        if params["mesh"] == "asset":
            meshes[name] = import_model(Path(params["file"]), name, params["transform"])
            continue
        vertices, faces, parts = mesh_with_parts(params)
        mesh = new_mesh(name, vertices, faces, smooth=False)
        mesh.polygons.foreach_set("material_index", parts)
        mesh.materials.append(None)
        for part in PARTS[1:]:
            mesh.materials.append(fixed[part])
        meshes[name] = mesh
    return meshes


def build_scene(scene_dict: dict, vocab: Vocabulary) -> list[bpy.types.Object]:
    """Populate the current (empty) Blender scene with an aerial scene; return the objects in annotation order."""
    set_resolution(scene_dict)
    add_camera(scene_dict, clip_end=4 * float(np.linalg.norm(scene_dict["camera"]["location"])))
    add_lights(scene_dict["lights"])
    add_world(SKY_COLOR, SKY_STRENGTH)
    _add_ground(scene_dict["ground"], scene_dict["gsd"])
    return add_objects(scene_dict["objects"], vocab, _part_meshes(vocab))
