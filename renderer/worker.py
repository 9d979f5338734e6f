"""Blender worker process: `python -m renderer.worker JOB.json` renders a chunk of scenes.

The job file lists sampled scenes and where to write them. For each scene the image is written
first, then the scene JSON (both atomically), so a scene JSON on disk always has its image. Split
and file names from the job must be plain names and their paths must stay inside the job's
output folder. Prints `done <index>` per scene on stdout.

`python -m renderer.worker --probe-gpu` exits 0 when Cycles finds a GPU. Errors end with one
line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from clevr_ds.dataset import image_path, scene_path
from clevr_ds.vocab import Vocabulary
from infra.atomic import write_json
from infra.jsonio import read_json
from infra.paths import inside, plain_name

from .assets import resolved
from .engines import enable_gpu
from .render import render_scene
from .settings import RenderError, RenderSettings


def _output_paths(out: Path, scene: dict, source: Path) -> tuple[Path, Path]:
    """The scene's image and scene JSON paths, after checking that its names are plain and the paths stay in `out`."""
    split = plain_name(scene["split"], "split", source)
    plain_name(scene["image_filename"], "image_filename", source)
    paths = image_path(out, scene), scene_path(out, split, scene["image_index"])
    return tuple(inside(out, *p.relative_to(out).parts, source=source) for p in paths)


def _with_ground_path(scene: dict, out: Path, source: Path) -> dict:
    """The scene with its ground image's stored copy as an absolute `path` (checked to stay in `out`), for the
    builder; a scene without one as it is."""
    layout = scene.get("ground")
    if not isinstance(layout, dict) or layout.get("kind") != "image":
        return scene
    return dict(scene, ground=dict(layout, path=str(inside(out, *layout["file"].split("/"), source=source))))


def run_job(job: dict, source: Path) -> None:
    out = Path(job["out"])
    vocab = resolved(Vocabulary.from_dict(job["vocabulary"]), out, source)
    settings = RenderSettings(**job["settings"])
    for scene in job["scenes"]:
        image, scene_file = _output_paths(out, scene, source)
        annotated = render_scene(_with_ground_path(scene, out, source), vocab, settings, image, job["min_visible_pixels"])
        if "ground" in scene:
            annotated["ground"] = scene["ground"]  # the scene JSON names the split's copy, never where it lies
        write_json(scene_file, annotated)
        print(f"done {scene['image_index']}", flush=True)


def main(argv: list[str]) -> int:
    try:
        if argv == ["--probe-gpu"]:
            enable_gpu()
        else:
            run_job(read_json(argv[0], "job file"), Path(argv[0]))
    except (RenderError, ValueError, OSError) as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
