"""The methods, backbones and weight tags this installation can use (`clevr-ds list`)."""

from __future__ import annotations

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
