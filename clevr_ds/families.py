"""Scene families: which sampler makes a split's scenes. A family is its vocabulary (data/), a sampler
and a scene builder in `renderer.render.BUILDERS`; `clevr` is CLEVR-DS's original world
(`clevr_ds.sampling`), `aerial` vehicles, boats and ships from above (`clevr_ds.aerial`).

The samplers are imported on first use, so that naming the families (the CLI's choices) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sampling import SceneConfig

SAMPLER_MODULES = {"clevr": "clevr_ds.sampling", "aerial": "clevr_ds.aerial"}
FAMILIES = tuple(SAMPLER_MODULES)


def sample_scene(config: SceneConfig, index: int) -> dict:
    """Scene `index` of the split, sampled by its family's sampler."""
    if config.family not in SAMPLER_MODULES:
        raise ValueError(f"unknown scene family {config.family!r}; choose from {', '.join(FAMILIES)}")
    return importlib.import_module(SAMPLER_MODULES[config.family]).sample_scene(config, index)
