"""`python cli.py render`: sample and render a CLEVR-DS split."""

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
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Blender worker processes")
@click.option("--min-visible-pixels", type=click.IntRange(min=1), default=16, show_default=True, help="fewer visible pixels flags an object invisible")
@click.option("--out", type=click.Path(file_okay=False), default=DEFAULT_ROOT, show_default=True)
@click.option("--resume", is_flag=True, help="continue the split already in --out with its recorded settings")
@click.option("--quiet", "-q", is_flag=True)
def render(scales, num_images, split, resolution, objects, preset, engine, samples, denoise, device, seed, workers, min_visible_pixels, out, resume, quiet):
    """Render a CLEVR-DS split (re-running the same command resumes it)."""
    from clevr_ds.dataset import DatasetError, load_meta
    from clevr_ds.sampling import SceneConfig, SceneSamplingError, config_from_dict
    from clevr_ds.scales import parse_int_range, parse_scales
    from clevr_ds.vocab import Vocabulary

    from .engines import RenderError
    from .pool import render_split
    from .settings import RenderSettings

    try:
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
        scenes = render_split(out, config, settings, num_images, workers, min_visible_pixels, quiet=quiet)
    except (ValueError, DatasetError, SceneSamplingError, RenderError) as e:
        raise click.ClickException(str(e)) from None
    if not quiet:
        click.echo(f"{len(scenes)} scenes of split {config.split!r} in {out}")


COMMANDS = [render]
