"""Render a split with an executor of Blender worker processes, resumably.

Imports no bpy: scenes are sampled here (the driver) and rendered in chunks by an executor
(`renderer.executors`: the local process pool or Ray), each chunk by a fresh
`python -m renderer.worker` process (Blender leaks memory across many scenes). Finished scenes
(scene JSON and image on disk) are skipped, so re-running the same command after a kill only
renders what is missing, with either executor.

A request is checked (split name, sizes, memory, a GPU when asked for) before anything is
written, and so are the folders it writes into: a symlinked one that leaves OUT is refused. The
whole run holds OUT's folder lock (one writer per folder). A finished run rewrites every export
of the split (COCO, manifest, and CLEVR's scenes file where `export` wrote one). The local pool
keeps job files, worker logs and the workers' TMPDIR (Blender's session folder, the id pass EXR)
in OUT/.jobs, removed at the end of the run and, after a kill, at the start of the next local
run: nothing leaks outside OUT.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tqdm import tqdm

from clevr_ds import GENERATOR_NAME, GENERATOR_VERSION
from clevr_ds.dataset import (DATASET_NAME, MAX_IMAGES, defining, image_file, load_meta, load_scenes, meta_path,
                              missing_files, scene_path, written_folders)  # fmt: skip
from clevr_ds.export import rewrite_exports
from clevr_ds.families import sample_scene
from clevr_ds.ground_image import check_stored, store_ground
from clevr_ds.sampling import SceneConfig, config_to_dict
from clevr_ds.schema import META_COUNT
from infra.atomic import remove_stale_temporaries, write_json
from infra.lock import folder_lock
from infra.paths import plain_name

from .assets import store_assets
from .executors import PROJECT_ROOT, Executor, LocalPool, worker_bytes, worker_command, worker_env
from .settings import RenderError, RenderSettings

MAX_SIDE = 16384
MAX_OBJECTS = 100
MAX_SAMPLES = 65536
MAX_WORKERS = 64


def split_meta(config: SceneConfig, settings: RenderSettings, num_images: int, min_visible_pixels: int) -> dict:
    return {
        "dataset": DATASET_NAME,
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION},
        **config_to_dict(config),
        "num_images": num_images,
        "min_visible_pixels": min_visible_pixels,
        "render": settings.to_dict(),
    }


def _check_meta(out: Path, meta: dict) -> dict:
    """Merge with an existing split's meta; refuse to mix scenes rendered with other settings. A smaller
    -n than the split's keeps the split's count where it holds scenes beyond -n (refused where it would
    stay incomplete) and becomes the count where it holds none (the unrendered tail of a killed run)."""
    split, wanted = meta["split"], meta["num_images"]
    if not meta_path(out, split).exists():
        return meta
    old = load_meta(out, split, META_COUNT)
    a, b = defining(old), defining(meta)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if differing:
        raise RenderError(
            f"{out} already holds split {split!r} rendered with other settings ({', '.join(differing)}); "
            "continue it with --resume, or choose another --out or --split"
        )
    held = old["num_images"]
    beyond = any(_on_disk(out, split, i) for i in range(wanted, held))
    if beyond and missing_files(out, split, held):
        raise RenderError(f"split {split!r} of {out} is an unfinished split of {held} images with scenes beyond "
                          f"-n {wanted}; finish it with -n {held} (or --resume), or choose another --out or --split")
    return dict(meta, num_images=held if beyond else wanted)


def check_request(config: SceneConfig, settings: RenderSettings, num_images: int, workers: int) -> None:
    """Refuse (RenderError, one line) requests beyond the renderer's bounds or this machine's memory."""
    plain_name(config.split, "split")
    limits = [
        ("image side", max(config.width, config.height), MAX_SIDE),
        ("number of images", num_images, MAX_IMAGES),
        ("objects per image", config.objects[1], MAX_OBJECTS),
        ("samples", settings.samples, MAX_SAMPLES),
        ("workers", workers, MAX_WORKERS),
    ]
    for what, value, limit in limits:
        if value > limit:
            raise RenderError(f"{what} {value} exceeds the limit of {limit}")
    need = workers * worker_bytes(config.width, config.height)
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > have:
        raise RenderError(
            f"{workers} worker(s) at {config.width}x{config.height} need about {need / 2**30:.1f} GiB of memory, "
            f"this machine has {have / 2**30:.1f} GiB; lower --resolution or --workers"
        )


def probe_gpu() -> None:
    """RenderError (one line) unless Blender's Cycles finds a GPU; runs a worker process, writes nothing."""
    proc = subprocess.run(worker_command("--probe-gpu"), capture_output=True, text=True, env=worker_env(), cwd=PROJECT_ROOT)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or [f"GPU probe failed (exit {proc.returncode})"]
        raise RenderError(lines[-1])


def _finished(out: Path, split: str, index: int) -> bool:
    return scene_path(out, split, index).exists() and image_file(out, split, index).exists()


def _on_disk(out: Path, split: str, index: int) -> bool:
    return scene_path(out, split, index).exists() or image_file(out, split, index).exists()


def render_split(
    out: Path | str,
    config: SceneConfig,
    settings: RenderSettings,
    num_images: int,
    workers: int = 1,
    min_visible_pixels: int = 16,
    chunk_size: int = 8,
    quiet: bool = False,
    executor: Executor | None = None,
    assets: Path | str | None = None,
    ground: Path | str | None = None,
) -> list[dict]:
    """Render scenes 0..num_images-1 of `config.split` into `out` with `executor` (default: a
    `LocalPool` of `workers`), in jobs of `chunk_size` scenes; return all finished scenes. `assets`:
    the folder of the user's models in `config.vocabulary` (`renderer.assets`), stored in `out` first;
    `ground`: the user's image of `config.ground` (`clevr_ds.ground_image`), stored in `out` first
    (without it, as on --resume, `out` must hold its copy)."""
    executor = executor or LocalPool(workers)
    out = Path(out)
    check_request(config, settings, num_images, workers)
    for i in range(min(num_images, len(config.scales))):
        sample_scene(config, i)  # an impossible request fails here, before anything is written
    if config.ground is not None and ground is None:
        check_stored(config.ground, out)
    written_folders(out, config.split)
    if settings.device == "gpu":
        probe_gpu()
    with folder_lock(out, purpose=f"render {config.split}"):
        meta = _check_meta(out, split_meta(config, settings, num_images, min_visible_pixels))
        split = config.split
        for folder in written_folders(out, split):
            remove_stale_temporaries(folder)  # left by a killed writer
        if assets is not None:
            store_assets(assets, out)
        if ground is not None:
            store_ground(ground, config.ground, out)
        todo = [i for i in range(num_images) if not _finished(out, config.split, i)]
        scenes = [sample_scene(config, i) for i in todo]
        write_json(meta_path(out, config.split), meta, indent=2, root=out)
        if settings.threads == 0:
            settings = settings.with_overrides(threads=executor.threads)
        jobs = [
            {
                "out": str(out.resolve()),
                "vocabulary": config.vocabulary.to_dict(),
                "settings": settings.to_dict(),
                "min_visible_pixels": min_visible_pixels,
                "scenes": scenes[i : i + chunk_size],
            }
            for i in range(0, len(scenes), chunk_size)
        ]
        with tqdm(total=num_images, initial=num_images - len(todo), unit="img", desc=f"render {config.split}", disable=quiet) as bar:
            for _ in executor.run(out, jobs):
                bar.update(1)
        finished = load_scenes(out, config.split)
        rewrite_exports(out, config.split, finished, config.vocabulary)
    return finished
