"""`python cli.py validate`: check a CLEVR-DS folder."""

from __future__ import annotations

import click


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--split", "splits", multiple=True, help="split(s) to check (default: all)")
def validate(root, splits):
    """Check every image, scene, mask, box and the COCO export of a CLEVR-DS folder."""
    from .validate import validate as run_validation

    problems = run_validation(root, list(splits))
    for p in problems:
        click.echo(p, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {root}")
    click.echo(f"{root}: OK")


COMMANDS = [validate]
