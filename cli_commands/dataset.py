"""`clevr-ds validate` checks a CLEVR-DS folder; `export` writes it in CLEVR's scene format (or anew as COCO).

`validate` only reads. `export` holds the folder's lock (not while a render writes it), refuses an
incomplete split unless --allow-incomplete, and writes nothing outside the folder.
"""

from __future__ import annotations

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
@click.option("--format", "fmt", type=click.Choice(["clevr", "coco"]), required=True,
              help="clevr: ROOT/CLEVR_<split>_scenes.json for CLEVR's own tools; coco: rewrite the COCO export and manifest")
@option("--split", "splits", multiple=True, help="split(s) to export (default: all)")
@allow_incomplete_option
def export(root, fmt, splits, allow_incomplete):
    """Write a CLEVR-DS folder's splits in another dataset format."""
    from clevr_ds.dataset import chosen_splits, finished_scenes, load_meta, load_vocabulary
    from clevr_ds.export import write_clevr_scenes, write_exports
    from clevr_ds.schema import SCENE
    from infra.lock import folder_lock

    splits = chosen_splits(root, list(splits))
    with folder_lock(root, purpose="export"):
        for split in splits:
            scenes = finished_scenes(root, split, SCENE, allow_incomplete)
            if fmt == "clevr":
                click.echo(f"{split}: {write_clevr_scenes(root, split, scenes)}")
            else:
                write_exports(root, split, scenes, load_vocabulary(root, split))
                click.echo(f"{split}: COCO export and manifest rewritten")
            expected = load_meta(root, split)["num_images"]
            if len(scenes) < expected:
                click.echo(f"warning: split {split!r}: exported {len(scenes)} of {expected} scenes (incomplete)", err=True)


COMMANDS = [validate, export]
