"""Blender worker process: `python -m renderer.worker JOB.json` renders a chunk of scenes.

The job file lists sampled scenes and where to write them. For each scene the image is written
first, then the scene JSON (both atomically), so a scene JSON on disk always has its image.
Prints `done <index>` per scene on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from clevr_ds.atomic import write_json
from clevr_ds.dataset import image_path, scene_path
from clevr_ds.vocab import Vocabulary

from .render import render_scene
from .settings import RenderSettings


def run_job(job: dict) -> None:
    out = Path(job["out"])
    vocab = Vocabulary.from_dict(job["vocabulary"])
    settings = RenderSettings(**job["settings"])
    for scene in job["scenes"]:
        annotated = render_scene(scene, vocab, settings, image_path(out, scene), job["min_visible_pixels"])
        write_json(scene_path(out, scene["split"], scene["image_index"]), annotated)
        print(f"done {scene['image_index']}", flush=True)


def main(argv: list[str]) -> int:
    run_job(json.loads(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
