"""`python cli.py render`: sample and render a CLEVR-DS split.

--split must be a plain name (a meta file must record the split it is named after, see
`clevr_ds.dataset.load_meta`). Every refusal, including an OS error (a read-only --out, an --out
below a file), ends with one line and writes nothing.
"""

from __future__ import annotations

import click

from clevr_ds.dataset import DEFAULT_ROOT

from .settings import DEVICES, ENGINES, PRESETS

DEFAULT_NUM_IMAGES = 20


@click.command()
@click.option("--scales", default="0.01-0.1", show_default=True, help="rel_scale range(s): A-B or A-B,C-D,... (images split evenly)")
@click.option("--num-images", "-n", type=click.IntRange(min=1), default=DEFAULT_NUM_IMAGES, show_default=True)
@click.option("--split", default="test", show_default=True, help="split name, e.g. train, val, test")
@click.option("--resolution", type=click.IntRange(min=16), default=2240, show_default=True, help="square image side in pixels")
@click.option("--objects", default="3-10", show_default=True, help="objects per image: N or A-B")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="default", show_default=True, help="quality preset")
@click.option("--engine", type=click.Choice(ENGINES), default=None, help="override the preset's engine")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="override the preset's samples per pixel")
@click.option("--denoise/--no-denoise", default=None, help="override the preset's denoising (Cycles)")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True, help="Cycles device")
@click.option("--seed", type=int, default=0, show_default=True, help="global seed; scene seeds derive from (seed, split, index)")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Blender worker processes (local executor)")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="where workers run: this machine's process pool, or Ray tasks (one CPU each)")
@click.option("--ray-address", default=None, help="address of the Ray cluster (HEAD_IP:6379); default: $RAY_ADDRESS, else a new one-machine cluster for this run")
@click.option("--chunk-size", type=click.IntRange(min=1), default=8, show_default=True, help="scenes per worker process (per Ray task)")
@click.option("--min-visible-pixels", type=click.IntRange(min=1), default=16, show_default=True, help="fewer visible pixels flags an object invisible")
@click.option("--out", type=click.Path(file_okay=False), default=DEFAULT_ROOT, show_default=True)
@click.option("--resume", is_flag=True, help="continue the split already in --out with its recorded settings")
@click.option("--quiet", "-q", is_flag=True)
def render(scales, num_images, split, resolution, objects, preset, engine, samples, denoise, device, seed, workers, executor, ray_address, chunk_size, min_visible_pixels, out, resume, quiet):
    """Render a CLEVR-DS split (re-running the same command resumes it)."""
    from clevr_ds.dataset import DatasetError, load_meta
    from clevr_ds.lock import FolderLockedError
    from clevr_ds.paths import plain_name
    from clevr_ds.sampling import SceneConfig, SceneSamplingError, config_from_dict
    from clevr_ds.scales import parse_int_range, parse_scales
    from clevr_ds.vocab import Vocabulary

    from .executors import LocalPool, RayExecutor
    from .pool import render_split
    from .settings import RenderError, RenderSettings

    try:
        plain_name(split, "--split")
        if resume:
            meta = load_meta(out, split)
            config = config_from_dict(meta)
            settings = RenderSettings(**meta["render"])
            num_images, min_visible_pixels = meta["num_images"], meta["min_visible_pixels"]
        else:
            config = SceneConfig(
                split=split,
                scales=tuple(parse_scales(scales)),
                width=resolution,
                height=resolution,
                objects=parse_int_range(objects, "--objects"),
                seed=seed,
                vocabulary=Vocabulary.load(),
            )
            settings = PRESETS[preset].with_overrides(engine=engine, samples=samples, denoise=denoise, device=device)
        runner = RayExecutor(ray_address) if executor == "ray" else LocalPool(workers)
        scenes = render_split(out, config, settings, num_images, workers, min_visible_pixels, chunk_size, quiet, runner)
    except (ValueError, DatasetError, SceneSamplingError, RenderError, FolderLockedError) as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"{e.filename}: {e.strerror}" if e.filename else str(e)) from None
    if not quiet:
        click.echo(f"{len(scenes)} scenes of split {config.split!r} in {out}")


COMMANDS = [render]
