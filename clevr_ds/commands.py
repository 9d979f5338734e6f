"""`python cli.py validate` checks a CLEVR-DS folder; `export` writes it in CLEVR's scene format (or anew as COCO)."""

from __future__ import annotations

import click


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--split", "splits", multiple=True, help="split(s) to check (default: all)")
def validate(root, splits):
    """Check every image, scene, mask, box and the COCO export of a CLEVR-DS folder; print each split's content hash."""
    from .dataset import list_splits, load_meta, load_scenes, split_hash
    from .standards import claimed_by, published
    from .validate import validate as run_validation

    problems = run_validation(root, list(splits))
    for p in problems:
        click.echo(p, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {root}")
    click.echo(f"{root}: OK")
    for split in splits or list_splits(root):
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
@click.option("--split", "splits", multiple=True, help="split(s) to export (default: all)")
def export(root, fmt, splits):
    """Write a CLEVR-DS folder's splits in another dataset format."""
    from .dataset import list_splits, load_scenes, load_vocabulary
    from .export import write_clevr_scenes, write_exports

    for split in splits or list_splits(root):
        scenes = load_scenes(root, split)
        if fmt == "clevr":
            click.echo(f"{split}: {write_clevr_scenes(root, split, scenes)}")
        else:
            write_exports(root, split, scenes, load_vocabulary(root, split))
            click.echo(f"{split}: COCO export and manifest rewritten")


COMMANDS = [validate, export]
