"""Instance-id pass: a 1-sample Cycles render in which object i emits exactly i + 1.

Each pixel gets the id of the object seen through its centre (box filter of width 0.01, no
bounces, no denoising), read back from a float EXR. Only the region around the objects' predicted
boxes is rendered; everything else is background (0).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
import numpy as np

REGION_MARGIN_PX = 4


def _emission(name: str, strength: float) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    emit.inputs["Strength"].default_value = strength
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def _set_region(scene: bpy.types.Scene, boxes: list[list[float]]) -> None:
    w, h = scene.render.resolution_x, scene.render.resolution_y
    if not boxes:
        scene.render.use_border = False
        return
    b = np.asarray(boxes)
    x0, y0 = max(0.0, b[:, 0].min() - REGION_MARGIN_PX), max(0.0, b[:, 1].min() - REGION_MARGIN_PX)
    x1, y1 = min(w, b[:, 2].max() + REGION_MARGIN_PX), min(h, b[:, 3].max() + REGION_MARGIN_PX)
    scene.render.use_border = True
    scene.render.use_crop_to_border = False
    # Blender's border is in [0, 1] with y pointing up.
    scene.render.border_min_x, scene.render.border_max_x = x0 / w, x1 / w
    scene.render.border_min_y, scene.render.border_max_y = 1 - y1 / h, 1 - y0 / h


def render_ids(scene: bpy.types.Scene, objects: list[bpy.types.Object], predicted_boxes: list[list[float]]) -> np.ndarray:
    """Render the id pass of the current scene; return an (H, W) int32 map (0 = background)."""
    scene.render.engine = "CYCLES"
    c = scene.cycles
    c.samples = 1
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.max_bounces = 0
    c.pixel_filter_type = "BOX"
    c.filter_width = 0.01
    scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    black = _emission("id_background", 0.0)
    for obj in scene.objects:
        if obj.type == "MESH":
            for slot in obj.material_slots:
                slot.link = "OBJECT"
                slot.material = black
    for i, obj in enumerate(objects):
        emission = _emission(f"id_{i}", float(i + 1))
        for slot in obj.material_slots:
            slot.material = emission
    _set_region(scene, predicted_boxes)
    img = scene.render.image_settings
    img.file_format = "OPEN_EXR"
    img.color_depth = "32"
    img.color_mode = "RGB"
    img.exr_codec = "NONE"
    with tempfile.TemporaryDirectory(prefix="clevr-ds-ids-") as tmp:
        path = Path(tmp) / "ids.exr"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(str(path))
        image.colorspace_settings.is_data = True
        pixels = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(pixels)
        h, w = image.size[1], image.size[0]
        bpy.data.images.remove(image)
    return np.rint(pixels.reshape(h, w, 4)[::-1, :, 0]).astype(np.int32)
