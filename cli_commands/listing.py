"""`clevr-ds list`: the methods, backbones and weight tags this installation can use."""

from __future__ import annotations

import click

from benchmark.listing import WHAT, catalogue


@click.command("list")
@click.argument("what", type=click.Choice(WHAT), required=False)
@click.option("--all", "everything", is_flag=True, help="Also list open_clip's architectures and downloadable tags.")
def list_command(what, everything):
    """List retrieval methods, backbone architectures and pretrained weight tags (ARCH:TAG)."""
    for section in [what] if what else WHAT:
        click.echo(f"{section}:")
        rows = catalogue(section, everything)
        width = max((len(name) for name, _ in rows), default=0)
        for name, description in rows:
            click.echo(f"  {name:<{width}}  {description}")


COMMANDS = [list_command]
