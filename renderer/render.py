"""Render one sampled scene: the image, then the id pass, then the annotations.

The PNG is written without text chunks: Blender stamps the date, render times and host into
every PNG (Cycles adds its render statistics, which no setting turns off), so identical renders
would give different files.
"""

from __future__ import annotations

import time
from pathlib import Path

import bpy

from clevr_ds.annotate import annotate_objects
from clevr_ds.obb import UnitMeshes
from clevr_ds.png import without_text
from clevr_ds.vocab import Vocabulary
from infra.atomic import atomic_path

from . import aerial_builder, scene_builder
from .engines import configure
from .id_pass import render_ids
from .scene_builder import reset
from .settings import RenderSettings

BUILDERS = {"clevr": scene_builder.build_scene, "aerial": aerial_builder.build_scene}  # by scene family
# Families whose scene JSONs keep the fields they had when their standard splits were published (no
# stored oriented boxes: exports and validate derive them), so that their content hashes hold.
FROZEN_FAMILIES = ("clevr",)


def render_scene(scene: dict, vocab: Vocabulary, settings: RenderSettings, image_file: Path, min_visible_pixels: int) -> dict:
    """Render `scene` to `image_file` (atomically) and return the scene with its annotations."""
    t0 = time.perf_counter()
    bl_scene = reset()
    objects = BUILDERS[scene.get("family", "clevr")](scene, vocab)
    configure(bl_scene, settings, scene["seed"])
    with atomic_path(image_file) as tmp:
        bl_scene.render.filepath = str(tmp)
        bl_scene.render.use_file_extension = False
        bpy.ops.render.render(write_still=True)
        tmp.write_bytes(without_text(tmp.read_bytes()))
    t1 = time.perf_counter()
    ids = render_ids(bl_scene, objects, [o["projected_bbox"] for o in scene["objects"]])
    annotated = dict(scene, objects=[dict(o) for o in scene["objects"]])
    family = scene.get("family", "clevr")
    annotate_objects(annotated, ids, min_visible_pixels, None if family in FROZEN_FAMILIES else UnitMeshes(vocab))
    t2 = time.perf_counter()
    annotated["render"] = {
        **settings.to_dict(),
        "bpy_version": bpy.app.version_string,
        "min_visible_pixels": min_visible_pixels,
        "render_s": round(t1 - t0, 3),
        "annotate_s": round(t2 - t1, 3),
    }
    return annotated
