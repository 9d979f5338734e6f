"""CLEVR-DS: a CLEVR-like synthetic dataset whose object scale is controlled.

Pure Python (numpy, pandas, pycocotools): vocabulary, scale specs, scene sampling, annotation
schema, dataset I/O, validation and COCO export. Never imports bpy or torch.
"""

GENERATOR_NAME = "clevr-ds"
GENERATOR_VERSION = "1.0.0"
GENERATOR_DATE = "2026-11-29"  # release date of this generator version: the exports' creation date (deterministic)
RENDER_LICENSE = {"id": 1, "name": "Creative Commons Attribution 4.0 (CC BY 4.0)", "url": "https://creativecommons.org/licenses/by/4.0/"}
