"""`clevr-ds train`, `encode`, `train-backbone` and `zero-shot`: DetailCLIP and its reference backbone
(heavy imports inside)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click

from clevr_ds.dataset import DEFAULT_ROOT
from detailclip.recipe import (FUSION_SIZES, LOSS_KINDS, MAX_K, PATCH_MODES, QUERY_SETS, SCHEMES, TEACHER_LEVEL_PENALTY,
                               FusionRecipe, LossConfig, TrainConfig)  # fmt: skip
from detailclip.registry import DEFAULT_FUSION_CHECKPOINT
from infra.atomic import writable
from infra.errors import first_line

from .options import (COVER_K_HELP, RAY_FEATURES, CoverK, allow_incomplete_option, backbone_option, cache_dir_option,
                      checkpoint_option, cover_k_option, device_option, executor_options, feature_options, option,
                      pretrained_option, quiet_option, renamed, seed_option, templates_option)  # fmt: skip


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(first_line(error))


def _level_list(ctx, param, value: str) -> tuple[int, ...] | None:
    """'all' -> None, '0,4,5' -> (0, 4, 5) (LossConfig checks the values)."""
    if value.strip().lower() == "all":
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not 'all' or comma-separated levels like 0,4,5") from None


def _levels_text(levels: tuple[int, ...] | None) -> str:
    return "all" if levels is None else ",".join(map(str, levels))


def _warn_if_untrained(backbone) -> None:
    if backbone.untrained_warning:
        click.echo(backbone.untrained_warning, err=True)


RECIPE = FusionRecipe()  # the shipped recipe: train's defaults
TRAINING, LOSS = RECIPE.train, RECIPE.train.loss


@click.command()
@backbone_option
@pretrained_option
@click.option("--image-size", type=click.IntRange(16), default=RECIPE.image_size, help="force the backbone's input size")
@option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
        help="CLEVR-DS folder, or a folder of images with --classes")
@option("--split", default="train", show_default=True, help="CLEVR-DS training split")
@option("--val-split", default="val", show_default=True,
              help="CLEVR-DS validation split; when absent, --val-fraction of the training images is held out")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.1, show_default=True)
@option("--classes", "classes_file", type=click.Path(path_type=Path), default=None,
              help="class names, one a line (required for a plain image folder; overrides CLEVR-DS's)")
@option("--templates", default=RECIPE.templates, show_default=True, help="prompt templates: openai80, short, plain, photo, aerial")
@click.option("--queries", type=click.Choice(QUERY_SETS), default=RECIPE.queries, show_default=True,
              help="text queries of the text terms: every (class, template) prompt, the template-averaged "
                   "class embeddings (the benchmark's queries), or both")
@click.option("--scheme", type=click.Choice(SCHEMES), default=RECIPE.scheme, show_default=True)
@option("--cover-k", type=CoverK(MAX_K), default=RECIPE.k, show_default=True, metavar="K|auto", help=COVER_K_HELP)
@renamed("--k", "--cover-k", type=CoverK(MAX_K))
@click.option("--size", type=click.Choice(list(FUSION_SIZES)), default=RECIPE.size, show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 0.9), default=RECIPE.dropout, show_default=True)
@click.option("--pre-norm/--post-norm", default=RECIPE.pre_norm, show_default=True,
              help="transformer layer norm placement")
@click.option("--level-embedding/--no-level-embedding", default=RECIPE.level_embedding, show_default=True,
              help="add a learned vector per Complete Cover level to each patch feature")
@click.option("--max-directions", type=click.IntRange(0), default=RECIPE.max_directions, show_default=True,
              help="learned directions of the fusion's max branch (max over patches of each one's similarity, "
                   "mixed into the fused vector; 0: none)")
@click.option("--epochs", type=click.IntRange(1), default=TRAINING.epochs, show_default=True)
@option("--batch-size", type=click.IntRange(1), default=TRAINING.batch_size, show_default=True, help="images per step")
@option("--lr", type=click.FloatRange(0, min_open=True), default=TRAINING.lr, show_default=True)
@option("--weight-decay", type=click.FloatRange(0), default=TRAINING.weight_decay, show_default=True)
@option("--warmup", type=click.FloatRange(0, 1), default=TRAINING.warmup, show_default=True, help="fraction of steps")
@click.option("--patience", type=click.IntRange(0), default=TRAINING.patience, show_default=True,
              help="0: no early stopping")
@click.option("--text-weight", type=click.FloatRange(0), default=LOSS.text_weight, show_default=True)
@click.option("--patch-weight", type=click.FloatRange(0), default=LOSS.patch_weight, show_default=True)
@click.option("--rank-weight", type=click.FloatRange(0), default=LOSS.rank_weight, show_default=True,
              help="weight of the text ranking term (per-query softmax over the batch's images)")
@click.option("--rank-temperature", type=click.FloatRange(0, min_open=True), default=LOSS.rank_temperature,
              show_default=True)
@click.option("--list-weight", type=click.FloatRange(0), default=LOSS.list_weight, show_default=True,
              help="weight of the listwise ranking term (per query, the likelihood of the teacher's order of the "
                   "batch's images over its first --list-depth places)")
@click.option("--list-depth", type=click.IntRange(1), default=LOSS.list_depth, show_default=True,
              help="places per query of the listwise term")
@click.option("--corr-weight", type=click.FloatRange(0), default=LOSS.corr_weight, show_default=True,
              help="weight of the text correlation term (per query, 1 - Pearson correlation over the batch's images)")
@click.option("--calibrate/--no-calibrate", default=LOSS.calibrate, show_default=True,
              help="text matching through a learned per-query scale and shift of the fused similarities")
@click.option("--detail-weight", type=click.FloatRange(0), default=LOSS.detail_weight, show_default=True,
              help="extra text matching weight of pairs whose evidence only small windows see (label-free)")
@click.option("--teacher-levels", default=_levels_text(LOSS.teacher_levels), show_default=True, callback=_level_list,
              help="Complete Cover levels whose patches the text targets max over (0: the whole image, 1: the "
                   "largest windows, ...), comma-separated, or all")
@click.option("--teacher-temperature", type=click.FloatRange(0), default=LOSS.teacher_temperature, show_default=True,
              help="> 0: distil the calibrated teacher (bench method cc-cal: each window's log-probability of the "
                   "query among the classes, at this temperature); 0: the plain max (cc-max)")
@click.option("--teacher-level-penalty", type=click.FloatRange(0), default=None,
              show_default=f"{TEACHER_LEVEL_PENALTY:g} with a teacher temperature, else 0",
              help="the calibrated teacher's penalty per Complete Cover level below an image's finest")
@click.option("--teacher-scheme", type=click.Choice(SCHEMES), default=LOSS.teacher_scheme, show_default="--scheme",
              help="the windows the teacher scores: --scheme's, or a scheme whose windows begin with them "
                   "(cc-fine for cc: the cover and magnified windows; the student reads the cover's alone)")
@click.option("--patch-mode", type=click.Choice(PATCH_MODES), default=LOSS.patch_mode, show_default=True)
@click.option("--loss", "kind", type=click.Choice(LOSS_KINDS), default=LOSS.kind, show_default=True)
@option("--checkpoint-every", type=click.IntRange(1), default=TRAINING.checkpoint_every, show_default=True, help="epochs")
@seed_option(default=TRAINING.seed, show_default=True)
@option("--cache-dir", type=click.Path(path_type=Path), default=None,
        help="Patch-feature cache [default: <out folder>/feature_cache]; none: no cache.")
@option("--extract-batch", type=click.IntRange(1), default=4, show_default=True,
        help="Images cut into patches and encoded together.")
@device_option()
@executor_options(RAY_FEATURES)
@option("--out", required=True, type=click.Path(path_type=Path), help="checkpoint file to write")
@option("--resume", is_flag=True, help="continue from <out>.state.pt")
@allow_incomplete_option
@quiet_option
def train(**opts):
    """Train a DetailCLIP fusion model on a folder of images (CLEVR-DS or plain + class names).

    The defaults are the recipe of the shipped fusion checkpoint (detailclip.recipe,
    scripts/make_reference_weights.sh)."""
    from clevr_ds.dataset import DatasetError
    from detailclip.backbones import BackboneError
    from detailclip.images import ImageError
    from detailclip.training.fusion_trainer import train_from_data

    out = writable(opts["out"])
    try:
        recipe = recipe_from_options(opts)
        metrics = train_from_data(recipe, opts["data_dir"], out, opts["split"], opts["val_split"], opts["classes_file"],
                                  opts["val_fraction"], cache_dir_option(opts["cache_dir"], out.parent / "feature_cache"),
                                  opts["extract_batch"], opts["device"], opts["cluster"], opts["resume"],
                                  progress=not opts["quiet"], warn=lambda line: click.echo(line, err=True),
                                  allow_incomplete=opts["allow_incomplete"])
    except (DatasetError, ImageError, BackboneError, ValueError, RuntimeError) as e:
        raise _fail(e) from None
    summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    click.echo(f"wrote {out}: {summary}")


def recipe_from_options(opts: dict) -> FusionRecipe:
    """The fusion recipe that `train`'s parsed options ask for (raises ValueError on a contradiction)."""
    values = {**opts, "k": opts["cover_k"]}

    def pick(config):
        return {f.name: values[f.name] for f in fields(config) if f.name in values}

    loss = LossConfig(**pick(LossConfig))
    return FusionRecipe(**pick(FusionRecipe), train=TrainConfig(**pick(TrainConfig), loss=loss))


@click.command()
@checkpoint_option(default=DEFAULT_FUSION_CHECKPOINT,
                   help="fusion checkpoint from train [default: the shipped one, on the offline reference backbone]")
@click.option("--images", "images_dir", required=True, type=click.Path(path_type=Path), help="folder of images (recursive)")
@option("--out", required=True, type=click.Path(path_type=Path), help=".npz with vectors [N, D] and paths")
@cover_k_option
@feature_options("none (no cache)")
@quiet_option
def encode(checkpoint, images_dir, out, cover_k, cache_dir, extract_batch, device, cluster, quiet):
    """Encode every image of a folder to one DetailCLIP vector.

    The .npz holds vectors, paths, untrained and config (the checkpoint's, with the cover's k; with --cover-k
    auto also cover_k: the rule and the k each image got, in the order of paths)."""
    import json

    import numpy as np

    from detailclip.backbones import BackboneError
    from detailclip.checkpoint import CheckpointError
    from detailclip.encode import encode_images_with_checkpoint
    from detailclip.images import ImageError, list_images
    from infra.atomic import npz_writer, write_together

    if out.suffix != ".npz":
        raise click.BadParameter("the output must be a .npz file", param_hint="--out")
    writable(out)
    try:
        paths = list_images(images_dir)
        if not paths:
            raise ImageError(f"no images in {images_dir}")
        vectors, config = encode_images_with_checkpoint(checkpoint, paths, cache_dir=cache_dir_option(cache_dir, None),
                                                        batch_size=extract_batch, device=device, progress=not quiet,
                                                        cluster=cluster, k=cover_k)
    except (CheckpointError, BackboneError, ImageError, ValueError) as e:
        raise _fail(e) from None
    names = np.array([str(p.relative_to(images_dir)) for p in paths])
    write_together({out: npz_writer({"vectors": vectors.numpy().astype(np.float32), "paths": names,
                                     "untrained": np.array(bool(config.get("untrained"))),
                                     "config": np.array(json.dumps(config))})})
    click.echo(f"wrote {out}: {len(paths)} vectors of dim {vectors.shape[1]}")
    if config.get("untrained"):
        click.echo("warning: the checkpoint's backbone has random weights: vectors are untrained", err=True)


@click.command("train-backbone")
@option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="CLEVR-DS folder")
@option("--split", default="train", show_default=True, help="training split")
@option("--val-split", default="val", show_default=True, help="validation split (zero-shot accuracy)")
@option("--backbone", default="CLEVR-DS-ViT-T-16", show_default=True, help="open_clip architecture (random init)")
@renamed("--model", "--backbone")
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True)
@option("--batch-size", type=click.IntRange(2), default=128, show_default=True, help="crops per step")
@click.option("--images-per-batch", type=click.IntRange(1), default=8, show_default=True,
              help="images the crops of one step are cut from")
@option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True)
@option("--weight-decay", type=click.FloatRange(0), default=0.1, show_default=True)
@option("--warmup", type=click.FloatRange(0, 1), default=0.05, show_default=True, help="fraction of steps")
@click.option("--grad-clip", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True)
@click.option("--min-crop", type=click.FloatRange(0.01, 1), default=0.08, show_default=True,
              help="smallest crop side / image side")
@click.option("--whole-share", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="share of whole images among the crops")
@click.option("--object-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="share of the other crops drawn around a random object (1.5-8x its box)")
@option("--min-pixels", type=click.FloatRange(0), default=4.0, show_default=True,
        help="smallest object side (px at the model's input) that a caption mentions")
@click.option("--hard-negatives", type=click.IntRange(0), default=0, show_default=True,
              help="captions per crop with one shape or colour swapped, as extra negatives")
@click.option("--shape-swap-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="share of hard negatives that swap a shape rather than a colour")
@click.option("--class-weight", type=click.FloatRange(0), default=0.0, show_default=True,
              help="weight of the class-prompt term (0: captions only)")
@click.option("--class-vector-weight", type=click.FloatRange(0), default=0.0, show_default=True,
              help="weight of the learned-class-vector term (a classifier used only in training)")
@templates_option
@click.option("--eval-every", type=click.IntRange(1), default=100, show_default=True, help="steps")
@option("--checkpoint-every", type=click.IntRange(1), default=100, show_default=True, help="steps")
@seed_option(default=0, show_default=True)
@device_option()
@option("--out", required=True, type=click.Path(path_type=Path),
        help=".safetensors file to write; its .json sidecar, .state.pt and .log.csv go beside it")
@option("--resume", is_flag=True, help="continue from <out>.state.pt")
@allow_incomplete_option
@quiet_option
def train_backbone(**opts):
    """Train a compact CLIP backbone from scratch on CLEVR-DS crops and captions (fp16 safetensors)."""
    import open_clip
    import torch

    from clevr_ds.dataset import DatasetError
    from detailclip.backbones import BackboneError, default_device
    from detailclip.images import ImageError
    from detailclip.registry import register
    from detailclip.training.backbone_trainer import BackboneTrainConfig
    from detailclip.training.backbone_trainer import train_backbone as run

    register()
    opts["model"] = opts.pop("backbone")
    writable(opts["out"])
    if opts["model"] not in open_clip.list_models():
        raise click.BadParameter(f"unknown open_clip architecture {opts['model']!r}", param_hint="--backbone")
    if opts["batch_size"] < opts["images_per_batch"]:
        raise click.BadParameter("must not exceed --batch-size", param_hint="--images-per-batch")
    config = BackboneTrainConfig(**{f.name: opts[f.name] for f in fields(BackboneTrainConfig) if f.name in opts})
    device = torch.device(opts["device"]) if opts["device"] else default_device()
    try:
        result = run(opts["data_dir"], opts["split"], opts["val_split"], config, opts["out"], device,
                     resume=opts["resume"], progress=not opts["quiet"], allow_incomplete=opts["allow_incomplete"])
    except (DatasetError, ImageError, BackboneError, ValueError, RuntimeError) as e:
        raise _fail(e) from None
    click.echo(f"wrote {opts['out']}: {config.model}, {result['steps']} steps, val_acc={result['val_acc']:.4f}, "
               f"{result['train_seconds']:.0f} s training")


@click.command("zero-shot")
@backbone_option
@pretrained_option
@option("--data", "data_dir", type=click.Path(path_type=Path), default=Path(DEFAULT_ROOT), show_default=True,
        help="CLEVR-DS folder")
@option("--split", default="test", show_default=True, help="held-out split")
@click.option("--factor", "factors", type=click.FloatRange(1), multiple=True, default=[3.0], show_default=True,
              help="crop side / object box side (repeat for several; larger shows the object smaller)")
@option("--min-pixels", type=click.FloatRange(0), default=4.0, show_default=True,
        help="objects smaller than this (px at the backbone's input) do not count as in a crop")
@templates_option
@device_option()
@option("--out", type=click.Path(path_type=Path), default=None, help="JSON report with every prediction")
@allow_incomplete_option
@quiet_option
def zero_shot(**opts):
    """Zero-shot class accuracy ("<colour> <shape>", or the shape alone for aerial scenes) of a backbone
    on the single-object crops of a split."""
    from clevr_ds.dataset import DatasetError, load_vocabulary
    from benchmark.runner import default_weights
    from benchmark.sources import SourceSpec
    from detailclip.backbones import DEFAULT_BACKBONE, BackboneError, default_pretrained, load_backbone, pretrained_id
    from detailclip.data import SplitImages
    from detailclip.images import ImageError
    from detailclip.text import templates_for
    from detailclip.zero_shot import evaluate_zero_shot
    from infra.atomic import write_json

    if opts["out"]:
        writable(opts["out"])
    try:
        vocabulary = load_vocabulary(opts["data_dir"], opts["split"])
        opts["templates"] = templates_for(opts["templates"], vocabulary.prompts)
        data = SplitImages.load(opts["data_dir"], opts["split"], not opts["quiet"], opts["allow_incomplete"])
        family = SourceSpec(data=opts["data_dir"], split=opts["split"]).family()
        _, pretrained = default_weights(None, opts["backbone"], opts["pretrained"], family)
        name = opts["backbone"] or DEFAULT_BACKBONE
        backbone = load_backbone(name, pretrained or default_pretrained(name), device=opts["device"])
        _warn_if_untrained(backbone)
        reports = evaluate_zero_shot(backbone, data, vocabulary, opts["factors"], opts["min_pixels"], opts["templates"])
    except (DatasetError, ImageError, BackboneError, ValueError, RuntimeError) as e:
        raise _fail(e) from None
    click.echo(f"{backbone.name} ({pretrained_id(backbone.pretrained)}) on split {opts['split']!r} of "
               f"{opts['data_dir']}, templates {opts['templates']}")
    click.echo(f"{'factor':>6} {'object px':>9} {'items':>5} {'accuracy':>8} {'colour':>6} {'shape':>6}")
    for r in reports:
        colour = "-" if r["colour_accuracy"] is None else f"{r['colour_accuracy']:.3f}"
        click.echo(f"{r['factor']:>6g} {r['object_pixels']:>9.1f} {r['items']:>5d} {r['accuracy']:>8.3f} "
                   f"{colour:>6} {r['shape_accuracy']:>6.3f}")
    if opts["out"]:
        write_json(opts["out"], {"backbone": backbone.identity, "data": str(opts["data_dir"]), "split": opts["split"],
                                 "min_pixels": opts["min_pixels"], "templates": opts["templates"], "reports": reports},
                   indent=1)
        click.echo(f"wrote {opts['out']}")


COMMANDS = [train, encode, train_backbone, zero_shot]
