"""Make the project's architectures and shipped weights known to open_clip itself.

After `import detailclip`, `open_clip.create_model_and_transforms("CLEVR-DS-ViT-T-16",
pretrained="clevr-ds-v3")` works and `open_clip.list_pretrained()` lists the built-in tags (as open_clip spells tags: `clevr_ds_v3`). Importing
open_clip costs seconds (it imports torch), so `import detailclip` does not: registration happens
now if open_clip is already imported, else right after its first import (a one-shot import hook).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

MODEL_CONFIG_DIR = Path(__file__).with_name("model_configs")
WEIGHTS_DIR = Path(__file__).with_name("weights")
# built-in tag -> (architecture, file in WEIGHTS_DIR): backbones trained by this project (offline)
BUILTIN_WEIGHTS = {"clevr-ds-v3": ("CLEVR-DS-ViT-T-16", "clevr-ds-vit-t-16-v3.safetensors"),
                   "clevr-ds-aerial-v1": ("CLEVR-DS-ViT-T-16", "clevr-ds-vit-t-16-aerial-v1.safetensors")}
# scene family -> (built-in tag, DetailCLIP fusion checkpoint trained on it): what `bench` and `zero-shot` use on
# a family's data when no backbone, weights or checkpoint are named; clevr's for any other data
FAMILY_WEIGHTS = {"clevr": ("clevr-ds-v3", WEIGHTS_DIR / "detailclip-tiny-ccfine-clevr-ds-v3.pt"),
                  "aerial": ("clevr-ds-aerial-v1", WEIGHTS_DIR / "detailclip-tiny-ccfine-clevr-ds-aerial-v1.pt")}
# the default of `encode`, `index` and `bench --model detailclip` on data of no family
DEFAULT_FUSION_CHECKPOINT = FAMILY_WEIGHTS["clevr"][1]


def config_names() -> list[str]:
    """The architectures defined by this package (JSON configs in model_configs/)."""
    return sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))


def register() -> None:
    """Register the package's architectures and built-in pretrained tags with open_clip (idempotent)."""
    import open_clip
    from open_clip import pretrained

    if not set(config_names()) <= set(open_clip.list_models()):
        open_clip.add_model_config(MODEL_CONFIG_DIR)
    for tag, (architecture, filename) in BUILTIN_WEIGHTS.items():
        path = WEIGHTS_DIR / filename
        if path.is_file():
            pretrained._PRETRAINED.setdefault(architecture, {})[pretrained._clean_tag(tag)] = {"file": str(path)}


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Wraps open_clip's loader so that `register()` runs once open_clip has been executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "open_clip":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            register()

        loader.exec_module = exec_and_register
        return spec


def register_when_imported() -> None:
    """Register now if open_clip is loaded, else as soon as it is."""
    if "open_clip" in sys.modules:
        register()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
