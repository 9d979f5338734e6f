"""DetailCLIP (arXiv 2208.14649, "Complete Cover"; not the segmentation DetailCLIP of 2409.06809):
Complete Cover patches, frozen CLIP backbones, a feature cache, fusion models, losses, training.

Names are imported lazily so that `import detailclip` (and the CLI's --help) stays fast; the
project's architectures and weight tags join open_clip's registries once open_clip is imported.
"""

from __future__ import annotations

import importlib

from .registry import register_when_imported

register_when_imported()

_EXPORTS = {
    "complete_cover_boxes": "cover",
    "grid_boxes": "cover",
    "object_boxes": "cover",
    "scheme_boxes": "cover",
    "extract_patches": "patches",
    "DEFAULT_BACKBONE": "backbones",
    "DEFAULT_PRETRAINED": "backbones",
    "Backbone": "backbones",
    "load_backbone": "backbones",
    "PatchFeatures": "features",
    "extract_features": "features",
    "build_fusion": "fusion",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "fuse": "encode",
    "encode_images_with_checkpoint": "encode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'detailclip' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
