"""`clevr-ds render`: sample and render a CLEVR-DS split.

--split must be a plain name (a meta file must record the split it is named after, see
`clevr_ds.dataset.load_meta`). Every refusal, including an OS error (a read-only --out, an --out
below a file), ends with one line and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from clevr_ds.dataset import DEFAULT_ROOT
from clevr_ds.families import FAMILIES
from clevr_ds.standards import STANDARDS, default_folder
from renderer.settings import DEVICES, ENGINES, PRESETS

from .options import device_option, executor_options, option, quiet_option, seed_option

DEFAULT_NUM_IMAGES = 20
MIN_SIDE = 16
MAX_TILT_DEG = 45.0
PRESET_KEYS = ("engine", "samples", "denoise")  # options whose None means the preset's value


class Resolution(click.ParamType):
    """An image size `N` (N x N) or `WxH` -> (width, height), each side MIN_SIDE px to the renderer's MAX_SIDE."""

    name = "N|WxH"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        from clevr_ds.scales import parse_size
        from renderer.pool import MAX_SIDE

        try:
            size = parse_size(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        for side in size:
            if side < MIN_SIDE:
                self.fail(f"{value!r}: side {side} is under the minimum of {MIN_SIDE}", param, ctx)
            if side > MAX_SIDE:
                self.fail(f"{value!r}: side {side} exceeds the limit of {MAX_SIDE}", param, ctx)
        return size


@click.command()
@click.option("--scales", default="0.01-0.1", show_default=True, help="rel_scale range(s): A-B or A-B,C-D,... (images split evenly)")
@click.option("--num-images", "-n", type=click.IntRange(min=1), default=DEFAULT_NUM_IMAGES, show_default=True)
@option("--split", default="test", show_default=True, help="split name, e.g. train, val, test")
@click.option("--resolution", type=Resolution(), metavar="N|WxH", default=2240, show_default=True,
              help="image size in pixels: N (N x N) or WxH, e.g. 320x192")
@click.option("--objects", default="3-10", show_default=True, help="objects per image: N or A-B")
@click.option("--family", type=click.Choice(FAMILIES), default="clevr", show_default=True,
              help="scene family: clevr (CLEVR's shapes, oblique view) or aerial (vehicles, boats, ships, planes, tanks from above)")
@click.option("--gsd", type=click.FloatRange(min=0, min_open=True), default=None,
              help="aerial: ground sample distance in metres per pixel; objects take their classes' sizes in metres, so "
                   "their scales follow (leave --scales out)")
@click.option("--assets", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="aerial: a folder of your own models (glTF/GLB, OBJ, PLY, .blend) and its assets.json; each adds a class")
@click.option("--ground", type=click.Path(path_type=Path), default=None,
              help="aerial: your own orthophoto (PNG, JPEG, TIFF, ...) as the ground instead of the procedural one; each "
                   "scene crops it by its seed (tiled when small); stored in the split")
@click.option("--ground-gsd", type=click.FloatRange(min=0, min_open=True), default=None,
              help="aerial, with --ground: metres per pixel of the ground image [default: each scene's gsd, one image pixel "
                   "per rendered pixel]")
@click.option("--max-tilt", type=click.FloatRange(0, MAX_TILT_DEG), default=0.0, show_default=True,
              help="aerial: the largest off-nadir camera tilt in degrees (each scene draws its own, recorded)")
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
@click.option("--standard", metavar="NAME", default=None, help=f"{'|'.join(STANDARDS)}: a named benchmark split (v1: CLEVR-DS-bench v1, 200 test images; aerial-v1: its aerial twin): fixes every option that defines content; --out defaults to output/clevr-ds-bench-NAME (quick: the default split, output/clevr-ds)")
@option("--resume", is_flag=True, help="continue the split already in --out with its recorded settings")
@quiet_option
def render(scales, num_images, split, resolution, objects, family, gsd, assets, ground, ground_gsd, max_tilt, preset, engine, samples, denoise, device, seed, workers, cluster, chunk_size, min_visible_pixels, out, standard, resume, quiet):
    """Render a CLEVR-DS split (re-running the same command resumes it)."""
    if standard:
        ctx = click.get_current_context()
        fixed = standard_options(ctx, standard)
        names = ("scales", "num_images", "split", "resolution", "objects", "family", "gsd", "assets", "ground", "ground_gsd",
                 "max_tilt", "preset", "engine", "samples", "denoise", "seed", "min_visible_pixels", "out")
        (scales, num_images, split, resolution, objects, family, gsd, assets, ground, ground_gsd, max_tilt, preset, engine,
         samples, denoise, seed, min_visible_pixels, out) = (as_read(ctx, name, fixed[name]) for name in names)
    check_family_options(click.get_current_context(), family, gsd, max_tilt, assets, ground, ground_gsd)
    if assets and (cluster or resume):
        raise click.UsageError("--assets cannot go with --executor ray (its nodes would lack the models)" if cluster
                               else "--assets cannot go with --resume (a resumed split has its models)")
    if ground and (cluster or resume):
        raise click.UsageError("--ground cannot go with --executor ray (its nodes would lack the image)" if cluster
                               else "--ground cannot go with --resume (a resumed split has its ground image)")
    from clevr_ds.aerial import physical_scales
    from clevr_ds.dataset import DatasetError, load_meta
    from clevr_ds.ground_image import read_ground
    from clevr_ds.sampling import SceneConfig, SceneSamplingError, config_from_dict
    from clevr_ds.scales import parse_int_range, parse_scales
    from clevr_ds.vocab import Vocabulary
    from infra.lock import FolderLockedError
    from infra.paths import plain_name
    from renderer.executors import LocalPool, RayExecutor
    from renderer.assets import asset_vocabulary
    from renderer.pool import render_split
    from renderer.settings import RenderError, RenderSettings

    try:
        plain_name(split, "--split")
        if resume:
            meta = load_meta(out, split)
            config = config_from_dict(meta)
            settings = RenderSettings(**meta["render"])
            num_images, min_visible_pixels = meta["num_images"], meta["min_visible_pixels"]
            if cluster and config.ground is not None:
                raise click.UsageError("a split with a ground image cannot resume with --executor ray (its nodes would lack the image)")
        else:
            ground_image = read_ground(ground, ground_gsd) if ground else None
            vocabulary = Vocabulary.of_family(family)
            if assets:
                vocabulary = asset_vocabulary(assets, vocabulary)
            config = SceneConfig(
                split=split,
                scales=(physical_scales(vocabulary, gsd, max(resolution)),) if gsd else tuple(parse_scales(scales)),
                width=resolution[0],
                height=resolution[1],
                objects=parse_int_range(objects, "--objects"),
                seed=seed,
                vocabulary=vocabulary,
                family=family,
                gsd=gsd,
                max_tilt_deg=max_tilt,
                ground=ground_image,
            )
            settings = PRESETS[preset].with_overrides(engine=engine, samples=samples, denoise=denoise, device=device)
        runner = RayExecutor(cluster.address) if cluster else LocalPool(workers)
        scenes = render_split(out, config, settings, num_images, workers, min_visible_pixels, chunk_size, quiet, runner, assets,
                              ground)
    except (ValueError, DatasetError, SceneSamplingError, RenderError, FolderLockedError) as e:
        raise click.ClickException(str(e)) from None
    if not quiet:
        click.echo(f"{len(scenes)} scenes of split {config.split!r} in {out}")


def check_family_options(ctx: click.Context, family: str, gsd: float | None, max_tilt: float, assets: Path | None,
                         ground: Path | None = None, ground_gsd: float | None = None) -> None:
    """Refuse aerial-only options for another family, --ground-gsd without --ground, and --gsd beside an explicit
    --scales."""
    if family != "aerial":
        for flag, value in (("--gsd", gsd), ("--max-tilt", max_tilt), ("--assets", assets), ("--ground", ground),
                            ("--ground-gsd", ground_gsd)):
            if value:
                raise click.UsageError(f"{flag} applies to --family aerial only")
    if ground_gsd and not ground:
        raise click.UsageError("--ground-gsd is the scale of a --ground image; give --ground IMAGE too")
    if gsd and ctx.get_parameter_source("scales") is ParameterSource.COMMANDLINE:
        raise click.UsageError("--gsd gives objects their physical sizes, so their scales follow; leave --scales out")


def standard_options(ctx: click.Context, name: str) -> dict:
    """The options `--standard name` fixes (and its default --out), refusing a command line that sets one otherwise."""
    if name not in STANDARDS:
        raise click.UsageError(f"unknown --standard {name!r}; choose from {', '.join(STANDARDS)}")
    try:
        fixed = STANDARDS[name].render_options(ctx.params["split"])
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    for key, value in fixed.items():
        if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE and ctx.params[key] != as_read(ctx, key, value):
            flag = "--" + key.replace("_", "-")
            fixed_to = value if value is not None else "the preset's value" if key in PRESET_KEYS else "none"
            raise click.UsageError(f"--standard {name} fixes {flag} to {fixed_to}; leave {flag} out")
    explicit_out = ctx.get_parameter_source("out") is ParameterSource.COMMANDLINE
    return {**fixed, "out": ctx.params["out"] if explicit_out else default_folder(name)}


def as_read(ctx: click.Context, name: str, value):
    """A standard's `value` of option `name` as the option reads it from a command line (resolution 2240: (2240, 2240))."""
    param = next(p for p in ctx.command.params if p.name == name)
    return param.type_cast_value(ctx, value)


COMMANDS = [render]
