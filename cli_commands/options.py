"""The command line's vocabulary: every option that several commands take is defined here, once.

A flag has one meaning in every command (`MEANINGS`, checked by tests/test_cli_vocabulary.py) and
one kind of value; a command may set its own default and say what the value is for it. A renamed
flag keeps its old spelling for one release (`renamed`): hidden, with a one-line deprecation warning.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from infra.cluster import ClusterError, RayCluster, session

MEANINGS = {
    "--allow-incomplete": "use a CLEVR-DS split with missing scenes or images (refused by default)",
    "--backbone": "open_clip architecture of the image and text towers",
    "--baseline": "also compare every run with this method or run label",
    "--batch-size": "examples per optimisation step of a training",
    "--cache-dir": "the verified patch-feature cache (none: no cache)",
    "--checkpoint": "a DetailCLIP fusion checkpoint",
    "--checkpoint-every": "how often a training saves its resumable state",
    "--classes": "a file of class names, one a line",
    "--coco": "a COCO instances JSON as the data source",
    "--cover-k": "k of Complete Cover (and of the grid), or auto: chosen per image from its size",
    "--data": "a CLEVR-DS folder (or a folder of images where the command says so)",
    "--device": "the device the work runs on",
    "--dota": "a DOTA v1/v1.5 folder as the data source",
    "--executor": "where the work runs: this machine or a Ray cluster",
    "--extract-batch": "images cut into patches and encoded together",
    "--image-root": "the folder of the --coco images",
    "--lr": "peak learning rate of a training",
    "--min-pixels": "objects smaller than this side (px at the model's input) are not named",
    "--min-visible-pixels": "fewer visible pixels than this and an object does not count",
    "--out": "where the command writes its result",
    "--pretrained": "open_clip pretrained tag, checkpoint file, or none (random weights)",
    "--quiet": "no progress output",
    "--ray-address": "address of the Ray cluster",
    "--resume": "continue the run already at --out with its recorded settings",
    "--seed": "the seed of the command's random choices (recorded in its outputs)",
    "--split": "a split of the CLEVR-DS folder",
    "--templates": "the prompt template set around class names",
    "--val-split": "the CLEVR-DS split a training validates on",
    "--verify": "check every run against its saved scores, split and weights (a verified column)",
    "--warmup": "fraction of a training's steps spent warming up the learning rate",
    "--wds": "the WebDataset shards of a CLEVR-DS split as the data source",
    "--weight-decay": "AdamW weight decay of a training",
}


class SharedOption(click.Option):
    """An option of the vocabulary: its `meaning` is MEANINGS[its flag]."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        flag = max(self.opts, key=len)
        if flag not in MEANINGS:
            raise KeyError(f"{flag} is not in cli_commands.options.MEANINGS: give it its one meaning there")
        self.meaning = MEANINGS[flag]


def option(*decls, **kwargs):
    """click.option for a flag of the vocabulary (MEANINGS)."""
    return click.option(*decls, cls=SharedOption, **kwargs)


def renamed(old: str, new: str, **kwargs):
    """Keep `old`, the former spelling of option `new`, for one release: hidden, and a one-line
    warning on stderr when used; its value goes to `new` (which wins when both are given)."""
    old_dest = "renamed_" + old.lstrip("-").replace("-", "_")
    new_dest = new.lstrip("-").replace("-", "_")

    def decorate(command):
        @click.option(old, old_dest, hidden=True, default=None, **kwargs)
        @functools.wraps(command)
        def run(*args, **params):
            value = params.pop(old_dest)
            if value is not None:
                click.echo(f"warning: {old} is deprecated and will be removed in the next release; use {new}", err=True)
                if click.get_current_context().get_parameter_source(new_dest) is click.core.ParameterSource.DEFAULT:
                    params[new_dest] = value
            return command(*args, **params)

        return run

    return decorate


quiet_option = option("--quiet", "-q", is_flag=True, help="No progress bars or progress lines.")
allow_incomplete_option = option(
    "--allow-incomplete", is_flag=True,
    help="Use a CLEVR-DS split with missing scenes or images (refused by default: a split still rendering, or whose "
         "render was killed); the command says or records how many it used.")  # fmt: skip
backbone_option = option("--backbone", help="open_clip architecture (default: the checkpoint's, else the offline reference backbone).")
pretrained_option = option("--pretrained", help="open_clip pretrained tag, checkpoint file, or none (random weights).")


class CoverK(click.ParamType):
    """A cover's k: a positive integer (at most `max_k`) or auto (detailclip.cover.parse_cover_k)."""

    name = "k"

    def __init__(self, max_k: int | None = None):
        self.max_k = max_k

    def convert(self, value, param, ctx):
        from detailclip.cover import parse_cover_k

        try:
            return parse_cover_k(value, self.max_k)
        except ValueError as e:
            self.fail(str(e), param, ctx)


COVER_K_HELP = ("k of Complete Cover and of the grid, or auto: per image, k = ceil(longest side / backbone input size), "
                "so the finest windows stay at the backbone's input size")
cover_k_option = option("--cover-k", type=CoverK(), metavar="K|auto",
                        help=f"{COVER_K_HELP} (default: the checkpoint's, the data's shipped fusion when no "
                             "weights are named; else 10).")
baseline_option = option("--baseline", "baselines", multiple=True, metavar="NAME",
                         help="Also compare every run with this method or run label (repeatable).")
templates_option = option("--templates", help="Prompt template set around class names: openai80, short, plain, photo, aerial "
                                             "(default: the data's own, e.g. a scene family's, else openai80).")
verify_option = option("--verify", is_flag=True,
                       help="Recompute every run's figures from its saved scores and check its split against the standard "
                            "split it names and its weights and checkpoint against their content hashes: a verified column "
                            "(verified, mismatched: why, unverifiable: why).")  # fmt: skip


def checkpoint_option(**kwargs):
    return option("--checkpoint", type=click.Path(path_type=Path), **kwargs)


def seed_option(**kwargs):
    return option("--seed", type=int, **kwargs)


def cache_dir_option(option_value: Path | None, default: Path | None) -> Path | None:
    """The --cache-dir folder: `default` when not given, None (no cache) for 'none'."""
    if option_value is None:
        return default
    return None if str(option_value).lower() == "none" else option_value


def device_option(**kwargs):
    kwargs.setdefault("help", "torch device (default: cuda when available).")
    return option("--device", **kwargs)


def executor_options(ray_work: str):
    """--executor local|ray and --ray-address, passed to the command as one argument `cluster`: a
    RayCluster, or None to run on this machine. `ray_work` says what runs on Ray. With Ray the
    command runs inside `infra.cluster.session(cluster)`; a ClusterError is its one-line error."""

    def decorate(command):
        @option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                help=f"Where the work runs: this machine, or {ray_work}.")
        @option("--ray-address", default=None,
                help="Address of the Ray cluster (HEAD_IP:6379); default: $RAY_ADDRESS, else a new one-machine cluster for this run.")
        @functools.wraps(command)
        def run(*args, executor: str, ray_address: str | None, **kwargs):
            cluster = RayCluster(ray_address) if executor == "ray" else None
            try:
                with session(cluster):
                    return command(*args, cluster=cluster, **kwargs)
            except ClusterError as e:
                raise click.ClickException(str(e)) from None

        return run

    return decorate


RAY_FEATURES = "Ray actors that extract the features missing from the cache (one GPU each when the cluster has GPUs, else one CPU)"


def feature_options(cache_default: str):
    """The feature-extraction options of the commands that encode images: --cache-dir (default
    `cache_default`), --extract-batch (formerly --batch-size), --device and --executor/--ray-address."""

    def decorate(command):
        for decorator in reversed((
            option("--cache-dir", type=click.Path(path_type=Path),
                   help=f"Patch-feature cache [default: {cache_default}]; none: no cache."),
            option("--extract-batch", type=click.IntRange(min=1), default=4, show_default=True,
                   help="Images cut into patches and encoded together."),
            renamed("--batch-size", "--extract-batch", type=click.IntRange(min=1)),
            device_option(),
            executor_options(RAY_FEATURES),
        )):
            command = decorator(command)
        return command

    return decorate


def source_options(data_default: Path | None, data_help: str):
    """The data source (--data, --split, --coco, --image-root, --dota, --wds, --classes), passed to the
    command as one argument `source`: a benchmark.sources.SourceSpec (flag conflicts: one line)."""

    def decorate(command):
        @option("--data", type=click.Path(path_type=Path), default=data_default, show_default=data_default is not None, help=data_help)
        @option("--split", default="test", show_default=True, help="Split of the CLEVR-DS folder.")
        @option("--coco", type=click.Path(path_type=Path), help="COCO instances JSON instead of a CLEVR-DS split (with --image-root).")
        @option("--image-root", type=click.Path(path_type=Path), help="Folder of the --coco images (file_name is relative to it).")
        @option("--dota", type=click.Path(path_type=Path), help="DOTA v1/v1.5 folder (images/, labelTxt/) instead of a CLEVR-DS split.")
        @option("--wds", metavar="SHARDS",
                help="WebDataset shards of a CLEVR-DS split (export --format wds) instead of its folder: their folder, "
                     "'DIR/test-{000000..000009}.tar' or a '::'-separated list.")
        @option("--classes", "classes_file", type=click.Path(path_type=Path),
                help="Class names, one per line: --coco: prompts in category order; --dota: the categories (default: DOTA-v1.5's).")
        @functools.wraps(command)
        def run(*args, data, split, coco, image_root, dota, wds, classes_file, **kwargs):
            from benchmark.sources import SourceSpec

            try:
                spec = SourceSpec(None if coco or dota or wds else data, split, coco, image_root, dota, classes_file, wds)
            except ValueError as e:
                raise click.ClickException(str(e)) from None
            return command(*args, source=spec, **kwargs)

        return run

    return decorate
