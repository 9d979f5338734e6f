"""Render a split with a pool of Blender worker processes, resumably.

Imports no bpy: each chunk of scenes is rendered by a fresh `python -m renderer.worker` process
(Blender leaks memory across many scenes). Finished scenes (scene JSON and image on disk) are
skipped, so re-running the same command after a kill only renders what is missing.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

from tqdm import tqdm

from clevr_ds import GENERATOR_NAME, GENERATOR_VERSION
from clevr_ds.atomic import remove_stale_temporaries, write_json
from clevr_ds.dataset import DATASET_NAME, image_file, images_dir, load_scenes, meta_path, read_json, scene_path, scenes_dir
from clevr_ds.export import write_exports
from clevr_ds.sampling import SceneConfig, config_to_dict, sample_scene

from .engines import RenderError
from .settings import RenderSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_LINES = 15
EXECUTION_SETTINGS = ("device", "threads")


def split_meta(config: SceneConfig, settings: RenderSettings, num_images: int, min_visible_pixels: int) -> dict:
    return {
        "dataset": DATASET_NAME,
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION},
        **config_to_dict(config),
        "num_images": num_images,
        "min_visible_pixels": min_visible_pixels,
        "render": settings.to_dict(),
    }


def _defining(meta: dict) -> dict:
    """The part of a split's meta that determines its content (not how many, nor where it ran)."""
    render = {k: v for k, v in meta.get("render", {}).items() if k not in EXECUTION_SETTINGS}
    return {**{k: v for k, v in meta.items() if k != "num_images"}, "render": render}


def _check_meta(out: Path, meta: dict) -> dict:
    """Merge with an existing split's meta; refuse to mix scenes rendered with other settings."""
    path = meta_path(out, meta["split"])
    if not path.exists():
        return meta
    old = read_json(path)
    a, b = _defining(old), _defining(meta)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if differing:
        raise RenderError(
            f"{out} already holds split {meta['split']!r} rendered with other settings ({', '.join(differing)}); "
            "continue it with --resume, or choose another --out or --split"
        )
    return dict(meta, num_images=max(meta["num_images"], old["num_images"]))


def _finished(out: Path, split: str, index: int) -> bool:
    return scene_path(out, split, index).exists() and image_file(out, split, index).exists()


def _pump(proc: subprocess.Popen, key: int, events: queue.Queue) -> None:
    for line in proc.stdout:
        if line.startswith("done "):
            events.put((key, int(line.split()[1])))
    events.put((key, None))


def _tail(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-LOG_TAIL_LINES:])


def _run_workers(jobs: list[dict], workers: int, tmp: Path, bar: tqdm) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    pending, running, events = deque(enumerate(jobs)), {}, queue.Queue()
    try:
        while pending or running:
            while pending and len(running) < workers:
                key, job = pending.popleft()
                job_file, log_file = tmp / f"job{key}.json", tmp / f"job{key}.log"
                write_json(job_file, job)
                with open(log_file, "w") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "renderer.worker", str(job_file)],
                        stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=PROJECT_ROOT,
                    )
                running[key] = (proc, log_file)
                threading.Thread(target=_pump, args=(proc, key, events), daemon=True).start()
            key, index = events.get()
            if index is not None:
                bar.update(1)
                continue
            proc, log_file = running.pop(key)
            if proc.wait() != 0:
                raise RenderError(f"Blender worker failed (exit {proc.returncode}): {_tail(log_file)}")
    finally:
        for proc, _ in running.values():
            proc.kill()
            proc.wait()


def render_split(
    out: Path | str,
    config: SceneConfig,
    settings: RenderSettings,
    num_images: int,
    workers: int = 1,
    min_visible_pixels: int = 16,
    chunk_size: int = 8,
    quiet: bool = False,
) -> list[dict]:
    """Render scenes 0..num_images-1 of `config.split` into `out`; return all finished scenes."""
    out = Path(out)
    meta = _check_meta(out, split_meta(config, settings, num_images, min_visible_pixels))
    for folder in (images_dir(out, config.split), scenes_dir(out, config.split)):
        remove_stale_temporaries(folder)
    todo = [i for i in range(num_images) if not _finished(out, config.split, i)]
    scenes = [sample_scene(config, i) for i in todo]  # fails early on impossible requests
    write_json(meta_path(out, config.split), meta, indent=2)
    if settings.threads == 0:
        settings = settings.with_overrides(threads=max(1, (os.cpu_count() or 1) // workers))
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
    with tempfile.TemporaryDirectory(prefix="clevr-ds-jobs-") as tmp, tqdm(
        total=num_images, initial=num_images - len(todo), unit="img", desc=f"render {config.split}", disable=quiet
    ) as bar:
        _run_workers(jobs, max(1, workers), Path(tmp), bar)
    finished = load_scenes(out, config.split)
    write_exports(out, config.split, finished, config.vocabulary)
    return finished
