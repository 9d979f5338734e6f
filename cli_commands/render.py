"""`clevr-ds render`: sample and render a CLEVR-DS split.

--split must be a plain name (a meta file must record the split it is named after, see
`clevr_ds.dataset.load_meta`). Every refusal, including an OS error (a read-only --out, an --out
below a file), ends with one line and writes nothing.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from clevr_ds.dataset import DEFAULT_ROOT
from clevr_ds.standards import STANDARDS, default_folder
from renderer.settings import DEVICES, ENGINES, PRESETS

from .options import device_option, executor_options, option, quiet_option, seed_option

DEFAULT_NUM_IMAGES = 20


@click.command()
@click.option("--scales", default="0.01-0.1", show_default=True, help="rel_scale range(s): A-B or A-B,C-D,... (images split evenly)")
@click.option("--num-images", "-n", type=click.IntRange(min=1), default=DEFAULT_NUM_IMAGES, show_default=True)
@option("--split", default="test", show_default=True, help="split name, e.g. train, val, test")
@click.option("--resolution", type=click.IntRange(min=16), default=2240, show_default=True, help="square image side in pixels")
@click.option("--objects", default="3-10", show_default=True, help="objects per image: N or A-B")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="default", show_default=True, help="quality preset")
@click.option("--engine", type=click.Choice(ENGINES), default=None, help="override the preset's engine")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="override the preset's samples per pixel")
@click.option("--denoise/--no-denoise", default=None, help="override the preset's denoising (Cycles)")
@device_option(type=click.Choice(DEVICES), default="cpu", show_default=True, help="Cycles device")
@seed_option(default=0, show_default=True, help="global seed; scene seeds derive from (seed, split, index)")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Blender worker processes (local executor)")
@executor_options("Ray tasks (one CPU each)")
@click.option("--chunk-size", type=click.IntRange(min=1), default=8, show_default=True, help="scenes per worker process (per Ray task)")
@option("--min-visible-pixels", type=click.IntRange(min=1), default=16, show_default=True, help="fewer visible pixels flags an object invisible")
@option("--out", type=click.Path(file_okay=False), default=DEFAULT_ROOT, show_default=True, help="the CLEVR-DS folder")
@click.option("--standard", metavar="NAME", default=None, help=f"{'|'.join(STANDARDS)}: a named benchmark split (v1: CLEVR-DS-bench v1, 200 test images): fixes every option that defines content; --out defaults to output/clevr-ds-bench-NAME (quick: the default split, output/clevr-ds)")
@option("--resume", is_flag=True, help="continue the split already in --out with its recorded settings")
@quiet_option
def render(scales, num_images, split, resolution, objects, preset, engine, samples, denoise, device, seed, workers, cluster, chunk_size, min_visible_pixels, out, standard, resume, quiet):
    """Render a CLEVR-DS split (re-running the same command resumes it)."""
    if standard:
        fixed = standard_options(click.get_current_context(), standard)
        scales, num_images, split, resolution, objects, preset, engine, samples, denoise, seed, min_visible_pixels, out = (
            fixed[name] for name in ("scales", "num_images", "split", "resolution", "objects", "preset", "engine",
                                     "samples", "denoise", "seed", "min_visible_pixels", "out"))
    from clevr_ds.dataset import DatasetError, load_meta
    from clevr_ds.sampling import SceneConfig, SceneSamplingError, config_from_dict
    from clevr_ds.scales import parse_int_range, parse_scales
    from clevr_ds.vocab import Vocabulary
    from infra.lock import FolderLockedError
    from infra.paths import plain_name
    from renderer.executors import LocalPool, RayExecutor
    from renderer.pool import render_split
    from renderer.settings import RenderError, RenderSettings

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
        runner = RayExecutor(cluster.address) if cluster else LocalPool(workers)
        scenes = render_split(out, config, settings, num_images, workers, min_visible_pixels, chunk_size, quiet, runner)
    except (ValueError, DatasetError, SceneSamplingError, RenderError, FolderLockedError) as e:
        raise click.ClickException(str(e)) from None
    if not quiet:
        click.echo(f"{len(scenes)} scenes of split {config.split!r} in {out}")


def standard_options(ctx: click.Context, name: str) -> dict:
    """The options `--standard name` fixes (and its default --out), refusing a command line that sets one otherwise."""
    if name not in STANDARDS:
        raise click.UsageError(f"unknown --standard {name!r}; choose from {', '.join(STANDARDS)}")
    try:
        fixed = STANDARDS[name].render_options(ctx.params["split"])
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    for key, value in fixed.items():
        if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE and ctx.params[key] != value:
            flag = "--" + key.replace("_", "-")
            fixed_to = "the preset's value" if value is None else value
            raise click.UsageError(f"--standard {name} fixes {flag} to {fixed_to}; leave {flag} out")
    explicit_out = ctx.get_parameter_source("out") is ParameterSource.COMMANDLINE
    return {**fixed, "out": ctx.params["out"] if explicit_out else default_folder(name)}


COMMANDS = [render]
