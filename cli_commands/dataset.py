"""`clevr-ds validate` checks a CLEVR-DS folder; `export` writes it in CLEVR's scene format, as a DOTA folder, a
Hugging Face image folder, WebDataset shards, its Croissant description and card (or anew as COCO).

`validate` only reads. `export` holds the folder's lock (not while a render writes it), refuses an
incomplete split unless --allow-incomplete, and writes nothing outside the folder but an --out.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import allow_incomplete_option, option


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@option("--split", "splits", multiple=True, help="split(s) to check (default: all)")
def validate(root, splits):
    """Check every image, scene, mask, box and export (COCO, manifest, CLEVR scenes) of a CLEVR-DS folder; print each split's content hash."""
    from clevr_ds.dataset import chosen_splits, load_meta, load_scenes, split_hash
    from clevr_ds.standards import claimed_by, published
    from clevr_ds.validate import validate as run_validation

    splits = chosen_splits(root, list(splits))
    problems = run_validation(root, splits)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {root}")
    click.echo(f"{root}: OK")
    for split in splits:
        scenes = load_scenes(root, split)
        content = split_hash(root, split, scenes)
        known = published(content)
        as_published = f": {known.title} {known.split}, as published ({known.cpu} render)" if known else ""
        click.echo(f"{split}: sha256 {content} ({len(scenes)} images){as_published}")
        claim = None if known else claimed_by(load_meta(root, split))
        if claim and claim[1] in claim[0].hashes:
            click.echo(f"warning: {split} has the settings of {claim[0].title} {claim[1]} but none of its published "
                       f"content hashes {claim[0].listed_hashes(claim[1])}: its images differ (another preset, device, Blender or CPU instruction set?)", err=True)


FORMATS = {
    "clevr": "ROOT/CLEVR_<split>_scenes.json for CLEVR's own tools",
    "coco": "rewrite the COCO export and manifest",
    "dota": "a DOTA v1.5 folder (images, labelTxt, labelTxt-hbb, classes.txt) that `bench --dota` reads",
    "hf": "an image folder with metadata.jsonl per split that datasets.load_dataset('imagefolder', data_dir=OUT) loads",
    "wds": "WebDataset shards <split>-NNNNNN.tar (a PNG and a scene JSON per sample) and <split>-meta.json that `bench --wds` reads",
    "croissant": "ROOT/croissant.json (Croissant 1.0) and the dataset card ROOT/README.md of the splits",
}  # fmt: skip
ONE_SPLIT_OUT = ("dota", "wds")  # --out is the folder of one split; hf: the folder holding each split's


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), required=True,
              help="; ".join(f"{name}: {text}" for name, text in FORMATS.items()))
@option("--split", "splits", multiple=True, help="split(s) to export (default: all)")
@option("--out", type=click.Path(path_type=Path),
        help="--format dota, wds: the folder of the one split exported (default: ROOT/dota/<split>, ROOT/wds/<split>); "
             "--format hf: the data_dir, each split in OUT/<split> (default: ROOT/hf).")  # fmt: skip
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="--format wds: images per shard [default: 100].")
@allow_incomplete_option
def export(root, fmt, splits, out, shard_size, allow_incomplete):
    """Write a CLEVR-DS folder's splits in another dataset format."""
    from clevr_ds.dataset import chosen_splits, finished_scenes, load_meta
    from clevr_ds.schema import SCENE
    from infra.lock import folder_lock

    splits = chosen_splits(root, list(splits))
    if out is not None and not (fmt == "hf" or (fmt in ONE_SPLIT_OUT and len(splits) == 1)):
        raise click.UsageError(f"--out goes with --format dota and one split, wds and one split, or hf (splits: {', '.join(splits)})")
    if shard_size is not None and fmt != "wds":
        raise click.UsageError("--shard-size goes with --format wds")
    with folder_lock(root, purpose="export"):
        exported = {}
        for split in splits:
            exported[split] = scenes = finished_scenes(root, split, SCENE, allow_incomplete)
            if fmt != "croissant":
                click.echo(f"{split}: {_write(fmt, root, split, scenes, out, shard_size)}")
            expected = load_meta(root, split)["num_images"]
            if len(scenes) < expected:
                click.echo(f"warning: split {split!r}: exported {len(scenes)} of {expected} scenes (incomplete)", err=True)
        if fmt == "croissant":
            from clevr_ds.croissant import write_croissant
            from renderer.settings import PRESETS

            paths = write_croissant(root, exported, {name: s.to_dict() for name, s in PRESETS.items()})
            click.echo(f"{', '.join(exported)}: {', '.join(map(str, paths))}")


def _write(fmt: str, root, split: str, scenes: list[dict], out: Path | None, shard_size: int | None) -> str:
    """Write one split in `fmt` (not croissant); what the command prints about it."""
    from clevr_ds.dataset import load_vocabulary

    if fmt == "clevr":
        from clevr_ds.export import write_clevr_scenes

        return str(write_clevr_scenes(root, split, scenes))
    if fmt == "coco":
        from clevr_ds.export import write_exports

        write_exports(root, split, scenes, load_vocabulary(root, split))
        return "COCO export and manifest rewritten"
    if fmt == "dota":
        from clevr_ds.dota import CLASSES, write_dota

        buckets = _buckets(root, split)
        folder = write_dota(root, split, scenes, load_vocabulary(root, split), out)
        return f"{folder} (bench --dota {folder} --classes {folder / CLASSES} --buckets {buckets})"
    if fmt == "hf":
        from clevr_ds.hf import write_hf

        folder = write_hf(root, split, scenes, out)
        return f"{folder} (datasets.load_dataset('imagefolder', data_dir='{folder.parent}'))"
    from clevr_ds.wds import DEFAULT_SHARD_SIZE, write_wds

    shards = write_wds(root, split, scenes, shard_size or DEFAULT_SHARD_SIZE, out)
    pattern = shards[0].with_name(f"{split}-{{000000..{len(shards) - 1:06d}}}.tar")
    return f"{len(shards)} shard(s) (bench --wds '{pattern}')"


def _buckets(root, split: str) -> str:
    """The split's default scale buckets as a `--buckets` value that parses back to the same floats."""
    from benchmark.buckets import default_buckets
    from clevr_ds.dataset import DatasetError, load_meta, meta_path
    from clevr_ds.schema import META_BENCH

    scales = load_meta(root, split, META_BENCH)["scales"]
    try:
        return ",".join(f"{b.lo!r}-{b.hi!r}" for b in default_buckets(scales))
    except ValueError as e:  # a malformed scale spec
        raise DatasetError(f"{meta_path(root, split)}: scales: {e}") from None


COMMANDS = [validate, export]
