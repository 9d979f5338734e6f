"""Build a Blender scene from a sampled CLEVR-DS scene dict, entirely from code (no .blend assets).

`build_scene` builds the CLEVR family; its pieces (camera, lights, materials, meshes) serve the
other families' builders (`renderer.aerial_builder`)."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix, Vector

from clevr_ds.assets import ORIGINAL
from clevr_ds.camera import SENSOR_WIDTH_MM
from clevr_ds.shapes import unit_mesh
from clevr_ds.vocab import Vocabulary

GROUND_SIZE = 400.0
GROUND_COLOR = (0.18, 0.18, 0.18)
WORLD_COLOR = (0.05, 0.05, 0.05)
WORLD_STRENGTH = 1.0
# OpenCV camera axes (x right, y down, z forward) -> Blender camera axes (x right, y up, -z forward).
_CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])


def reset() -> bpy.types.Scene:
    """Start from an empty file (also frees the previous scene's data)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def principled(name: str, color, metallic: float, roughness: float, specular: float) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    bsdf = mat.node_tree.nodes.get("Principled BSDF") or mat.node_tree.nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Specular IOR Level"].default_value = specular
    mat.diffuse_color = (*color, 1.0)  # what Workbench shows
    return mat


def new_mesh(name: str, vertices: np.ndarray, faces, smooth: bool) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], [list(f) for f in faces])
    mesh.validate()
    if smooth:
        mesh.shade_smooth()
    return mesh


def link_object(name: str, data) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def add_camera(scene_dict: dict, clip_end: float = 2000.0) -> None:
    cam = scene_dict["camera"]
    data = bpy.data.cameras.new("camera")
    data.lens = cam["focal_mm"]
    data.sensor_width = SENSOR_WIDTH_MM
    data.sensor_fit = "AUTO"
    data.clip_start, data.clip_end = 0.05, clip_end
    obj = bpy.data.objects.new("camera", data)
    c2w = np.linalg.inv(np.asarray(cam["world_to_camera"])) @ _CV_TO_BLENDER
    obj.matrix_world = Matrix(c2w.tolist())
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.scene.camera = obj


def add_lights(lights: list[dict]) -> None:
    for light in lights:
        data = bpy.data.lights.new(light["name"], type="SUN")
        data.energy = light["strength"]
        data.angle = np.deg2rad(light["angle_deg"])
        obj = bpy.data.objects.new(light["name"], data)
        # A sun shines along its local -z: aim +z at the light.
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = Vector(light["direction"]).to_track_quat("Z", "Y")
        bpy.context.scene.collection.objects.link(obj)


def add_world(color=WORLD_COLOR, strength: float = WORLD_STRENGTH) -> None:
    world = bpy.data.worlds.new("world")
    bg = world.node_tree.nodes.get("Background") or world.node_tree.nodes.new("ShaderNodeBackground")
    bg.inputs["Color"].default_value = (*color, 1.0)
    bg.inputs["Strength"].default_value = strength
    bpy.context.scene.world = world


def set_resolution(scene_dict: dict) -> None:
    scene = bpy.context.scene
    scene.render.resolution_x = scene_dict["width"]
    scene.render.resolution_y = scene_dict["height"]
    scene.render.resolution_percentage = 100


def build_scene(scene_dict: dict, vocab: Vocabulary) -> list[bpy.types.Object]:
    """Populate the current (empty) Blender scene with a CLEVR scene; return the objects in annotation order."""
    set_resolution(scene_dict)
    add_camera(scene_dict)
    add_lights(scene_dict["lights"])
    add_world()
    ground_v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=float) * GROUND_SIZE / 2
    ground = link_object("ground", new_mesh("ground", ground_v, [(0, 1, 2, 3)], smooth=False))
    ground.data.materials.append(principled("ground", GROUND_COLOR, 0.0, 0.6, 0.3))

    meshes = {}
    for name, params in vocab.shapes.items():
        meshes[name] = new_mesh(name, *unit_mesh(params), smooth=params["mesh"] != "box")
        meshes[name].materials.append(None)  # one slot, filled per object
    return add_objects(scene_dict["objects"], vocab, meshes)


def add_objects(objects: list[dict], vocab: Vocabulary, meshes: dict[str, bpy.types.Mesh]) -> list[bpy.types.Object]:
    """Link one Blender object per scene object (its mesh by shape; slot 0 takes its colour and material,
    unless its colour is ORIGINAL: a user's model keeps its own materials)."""
    materials = {}
    linked = []
    for i, o in enumerate(objects):
        key = (o["color"], o["material"])
        if key not in materials and o["color"] != ORIGINAL:
            m = vocab.materials[o["material"]]
            materials[key] = principled(f"{o['color']}_{o['material']}", vocab.linear_rgb(o["color"]), m["metallic"], m["roughness"], m["specular"])
        obj = link_object(f"object_{i:03d}", meshes[o["shape"]])
        obj.scale = (o["size"],) * 3
        obj.rotation_euler = (0.0, 0.0, np.deg2rad(o["rotation"]))
        obj.location = o["3d_coords"]
        obj.pass_index = i + 1
        if o["color"] != ORIGINAL:
            obj.material_slots[0].link = "OBJECT"
            obj.material_slots[0].material = materials[key]
        linked.append(obj)
    return linked
