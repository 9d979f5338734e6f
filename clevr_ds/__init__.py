"""CLEVR-DS: a CLEVR-like synthetic dataset whose object scale is controlled.

Pure Python (numpy, pandas, pycocotools): vocabulary, scale specs, scene sampling, annotation
schema, dataset I/O, validation and COCO export. Never imports bpy or torch.
"""

GENERATOR_NAME = "clevr-ds"
GENERATOR_VERSION = "1.0.0"
