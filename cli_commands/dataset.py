"""`clevr-ds validate` checks a CLEVR-DS folder; `export` writes it in CLEVR's scene format, as a DOTA folder (or anew as COCO).

`validate` only reads. `export` holds the folder's lock (not while a render writes it), refuses an
incomplete split unless --allow-incomplete, and writes nothing outside the folder but a DOTA --out.
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
        click.echo(f"{split}: sha256 {content} ({len(scenes)} images)" + (f": {known[0]} {known[1]}, as published" if known else ""))
        claim = None if known else claimed_by(load_meta(root, split))
        if claim and claim[1] in claim[0].hashes:
            click.echo(f"warning: {split} has the settings of {claim[0].title} {claim[1]} but not its published content "
                       f"hash {claim[0].hashes[claim[1]]}: its images differ (another preset, device or Blender?)", err=True)


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["clevr", "coco", "dota"]), required=True,
              help="clevr: ROOT/CLEVR_<split>_scenes.json for CLEVR's own tools; coco: rewrite the COCO export and manifest; "
                   "dota: a DOTA v1.5 folder (images, labelTxt, labelTxt-hbb, classes.txt) that `bench --dota` reads")  # fmt: skip
@option("--split", "splits", multiple=True, help="split(s) to export (default: all)")
@option("--out", type=click.Path(path_type=Path), help="--format dota: the DOTA folder of the one split exported (default: ROOT/dota/<split>).")
@allow_incomplete_option
def export(root, fmt, splits, out, allow_incomplete):
    """Write a CLEVR-DS folder's splits in another dataset format."""
    from clevr_ds.dataset import chosen_splits, finished_scenes, load_meta, load_vocabulary
    from clevr_ds.dota import CLASSES, write_dota
    from clevr_ds.export import write_clevr_scenes, write_exports
    from clevr_ds.schema import SCENE
    from infra.lock import folder_lock

    splits = chosen_splits(root, list(splits))
    if out is not None and (fmt != "dota" or len(splits) != 1):
        raise click.UsageError(f"--out goes with --format dota and one split (splits: {', '.join(splits)})")
    with folder_lock(root, purpose="export"):
        for split in splits:
            scenes = finished_scenes(root, split, SCENE, allow_incomplete)
            expected = load_meta(root, split)["num_images"]
            if fmt == "clevr":
                click.echo(f"{split}: {write_clevr_scenes(root, split, scenes)}")
            elif fmt == "dota":
                buckets = _buckets(root, split)
                folder = write_dota(root, split, scenes, load_vocabulary(root, split), out)
                click.echo(f"{split}: {folder} (bench --dota {folder} --classes {folder / CLASSES} --buckets {buckets})")
            else:
                write_exports(root, split, scenes, load_vocabulary(root, split))
                click.echo(f"{split}: COCO export and manifest rewritten")
            if len(scenes) < expected:
                click.echo(f"warning: split {split!r}: exported {len(scenes)} of {expected} scenes (incomplete)", err=True)


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
