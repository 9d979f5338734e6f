"""`python cli.py list`: the methods, backbones and weight tags this installation can use."""

from __future__ import annotations

import click

WHAT = ("methods", "backbones", "pretrained")


def catalogue(what: str, everything: bool = False) -> list[tuple[str, str]]:
    """(name, description) rows of one catalogue: retrieval methods, architectures, or
    (architecture, tag) weight pairs. Without `everything`, architectures and tags are those
    usable offline: this package's own plus open_clip's that have built-in weights files."""
    if what == "methods":
        from .methods import METHODS

        return [(name, cls.summary) for name, cls in METHODS.items()]
    import open_clip

    from detailclip.registry import BUILTIN_WEIGHTS, config_names, register

    register()
    if what == "backbones":
        own = config_names()
        rows = [(name, "this project (offline)") for name in own]
        return rows + ([(name, "open_clip") for name in open_clip.list_models() if name not in own] if everything else [])
    builtin = {(arch, tag) for tag, (arch, _) in BUILTIN_WEIGHTS.items()}
    rows = [(f"{arch}:{tag}", "shipped with this project (offline)") for arch, tag in sorted(builtin)]
    if everything:
        rows += [(f"{arch}:{tag}", "open_clip (downloads on first use)") for arch, tag in open_clip.list_pretrained()
                 if open_clip.pretrained.get_pretrained_cfg(arch, tag).get("file") is None]
    return rows


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
